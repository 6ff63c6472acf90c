// Backups: take a backup of an instance, list its backups, import from one, delete one.
import { api, q } from "./api.js";
import { bytes, confirm, field, go, h, messages, select, when } from "./util.js";

export async function render(main, params, ctx) {
  const box = messages();
  main.append(h("h1", { text: "Backups" }), box);
  let instances;
  try {
    instances = (await api("GET", "/instances")).instances;
  } catch (err) {
    box.show(err.text || err.message);
    return;
  }
  if (!instances.length) {
    main.append(h("p", {}, "Backups are taken of registered instances: ", h("a", { href: "#/instances", text: "register one" }), " first."));
    return;
  }
  const chosen = params.get("instance") || instances[0].instance_id;
  const pick = select(instances.map((i) => [i.instance_id, `${i.name} (${i.ip}:${i.port})`]), chosen);
  pick.name = "instance";
  pick.addEventListener("change", () => go(`#/backups${q({ instance: pick.value })}`));
  const remark = h("input", { name: "remark", maxlength: 1024 });
  const take = h("button", { type: "submit", class: "primary", text: "Take a backup" });
  const takeBox = messages();
  const form = h(
    "form",
    { class: "card", "aria-label": "Take a backup" },
    h("div", { class: "grid" }, field("Instance", pick), field("Remark", remark)),
    h("p", { class: "hint", text: "The service reads the instance's RDB over the replication protocol into its backup store; the instance keeps serving." }),
    h("div", { class: "buttons" }, take),
    takeBox,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    take.disabled = true;
    takeBox.clear();
    try {
      const r = await api("POST", `/instances/${encodeURIComponent(pick.value)}/backups`, remark.value ? { remark: remark.value } : {});
      takeBox.show(`Backup ${r.backup_id} started.`, "ok");
      remark.value = "";
      await refresh();
    } catch (err) {
      takeBox.show(err.text || err.message);
    } finally {
      take.disabled = false;
    }
  });
  const tbody = h("tbody");
  main.append(
    form,
    h("h2", { text: "Backups of the instance" }),
    h("div", { class: "scroll" }, h("table", { class: "list", id: "backups" },
      h("thead", {}, h("tr", {}, ["Name", "Status", "Progress", "Size", "Taken", "Remark", "Actions"].map((c) => h("th", { scope: "col", text: c })))),
      tbody)),
  );

  const row = (b) => {
    const rowBox = messages();
    const del = h("button", { type: "button", class: "danger", text: "Delete" });
    del.addEventListener("click", async () => {
      const ok = await confirm({
        title: `Delete the backup ${b.backup_name}?`,
        body: [`The backup file (${bytes(b.size)}) is removed from the backup store and its record from this list; it cannot be imported any more. The instance is not touched.`],
        ok: "Delete the backup",
        danger: true,
      });
      if (!ok) return;
      try {
        await api("DELETE", `/instances/${encodeURIComponent(b.instance_id)}/backups/${encodeURIComponent(b.backup_id)}`);
        await refresh();
      } catch (err) {
        rowBox.show(err.text || err.message);
      }
    });
    const ok = b.status === "succeed";
    return h(
      "tr",
      { data: { backup: b.backup_id, status: b.status } },
      h("th", { scope: "row", text: b.backup_name }),
      h("td", { text: b.status + (b.error_code ? ` (${b.error_code})` : "") }),
      h("td", { text: b.progress ? `${b.progress}%` : "–" }),
      h("td", { text: ok ? bytes(b.size) : "–" }),
      h("td", { text: when(b.created_at) }),
      h("td", { text: b.remark || "" }),
      h("td", { class: "row-actions" },
        ok ? h("a", { class: "button", href: `#/create${q({ backup: b.backup_id })}`, text: "Import from it" }) : null,
        del, rowBox),
    );
  };

  async function refresh() {
    try {
      const r = await api("GET", `/instances/${encodeURIComponent(chosen)}/backups${q({ limit: 100 })}`);
      box.clear();
      const keep = new Map([...tbody.querySelectorAll("tr[data-backup]")].map((tr) => [`${tr.dataset.backup}:${tr.dataset.status}`, tr]));
      tbody.replaceChildren(...r.backup_record_response.map((b) => keep.get(`${b.backup_id}:${b.status}`) || row(b)));
      if (!r.backup_record_response.length) tbody.append(h("tr", {}, h("td", { colspan: 7, class: "empty", text: "No backup of this instance yet." })));
    } catch (err) {
      box.show(err.text || err.message);
    }
  }
  ctx.every(refresh, 2000);
}
