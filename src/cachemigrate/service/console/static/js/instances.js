// Instances: the project's registered Redis endpoints: register, test the connection, delete.
import { api } from "./api.js";
import { confirm, field, h, messages, when } from "./util.js";

export function render(main, _params, ctx) {
  const listBox = messages();
  const tbody = h("tbody");
  const formBox = messages();
  const name = h("input", { name: "name", required: true, spellcheck: "false" });
  const addrs = h("input", { name: "addrs", required: true, placeholder: "host:port", spellcheck: "false" });
  const password = h("input", { name: "password", type: "password", autocomplete: "new-password" });
  const user = h("input", { name: "access_user", spellcheck: "false", placeholder: "default" });
  const description = h("input", { name: "description" });
  const tls = h("input", { type: "checkbox", name: "enable_ssl", id: "inst-tls" });
  const verify = h("input", { type: "checkbox", name: "ssl_verify", id: "inst-verify", checked: true });
  const submit = h("button", { type: "submit", class: "primary", text: "Register" });
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "h-register", novalidate: true },
    h("h2", { id: "h-register", text: "Register an instance" }),
    h("p", { class: "hint", text: "The service connects to it before it is registered: the address must answer, and the password (if any) must be accepted." }),
    h("div", { class: "grid" },
      field("Name", name, "4 to 64 letters, digits, _ or -"),
      field("Address", addrs, "host:port[,host:port...]"),
      field("Password", password, "Write-only: never shown again"),
      field("ACL user", user),
      field("Description", description)),
    h("div", { class: "field check" }, tls, h("label", { for: "inst-tls", text: " TLS" }), " ", verify, h("label", { for: "inst-verify", text: " verify the server's certificate" })),
    h("div", { class: "buttons" }, submit),
    formBox,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    formBox.clear();
    try {
      const body = { name: name.value.trim(), addrs: addrs.value.trim(), description: description.value };
      if (password.value) body.password = password.value;
      if (user.value.trim()) body.access_user = user.value.trim();
      if (tls.checked) {
        body.enable_ssl = true;
        body.ssl_verify = verify.checked;
      }
      const r = await api("POST", "/instances", body);
      form.reset();
      formBox.show(`Registered ${r.name}.`, "ok");
      await refresh();
    } catch (err) {
      formBox.show(err.text || err.message);
    } finally {
      submit.disabled = false;
    }
  });

  main.append(
    h("h1", { text: "Instances" }),
    listBox,
    h("div", { class: "scroll" }, h("table", { class: "list", id: "instances" },
      h("thead", {}, h("tr", {}, ["Name", "Address", "Version", "TLS", "Password", "Registered", "Actions"].map((c) => h("th", { scope: "col", text: c })))),
      tbody)),
    form,
  );

  const row = (i) => {
    const box = messages();
    const test = h("button", { type: "button", text: "Test connection" });
    test.addEventListener("click", async () => {
      test.disabled = true;
      box.clear();
      try {
        const r = await api("POST", `/instances/${i.instance_id}/connection-test`);
        box.show(`Reachable: ${r.engine} ${r.engine_version}.`, "ok");
      } catch (err) {
        box.show(err.text || err.message);
      } finally {
        test.disabled = false;
      }
    });
    const backup = h("a", { class: "button", href: `#/backups?instance=${encodeURIComponent(i.instance_id)}`, text: "Backups" });
    const del = h("button", { type: "button", class: "danger", text: "Delete" });
    del.addEventListener("click", async () => {
      const ok = await confirm({
        title: `Delete the instance ${i.name}?`,
        body: [`${i.name} (${i.ip}:${i.port}) leaves this project's inventory: new tasks cannot pick it. The Redis server itself, its data and the tasks that already name it are not touched; its backups stay listed under Backups.`],
        ok: "Delete the instance",
        danger: true,
      });
      if (!ok) return;
      box.clear();
      try {
        await api("DELETE", `/instances/${i.instance_id}`);
        await refresh();
      } catch (err) {
        box.show(err.text || err.message);
      }
    });
    return h(
      "tr",
      { data: { instance: i.instance_id, name: i.name } },
      h("th", { scope: "row", text: i.name }),
      h("td", { text: `${i.ip}:${i.port}` }),
      h("td", { text: i.engine_version || "–" }),
      h("td", { text: i.enable_ssl ? "yes" : "no" }),
      h("td", { text: i.no_password_access === "true" ? "none" : "set" }),
      h("td", { text: when(i.created_at) }),
      h("td", { class: "row-actions" }, test, backup, del, box),
    );
  };

  async function refresh() {
    try {
      const r = await api("GET", "/instances");
      listBox.clear();
      // Rows are kept while their instance stays: a test's result stays beside its button.
      const keep = new Map([...tbody.querySelectorAll("tr[data-instance]")].map((tr) => [tr.dataset.instance, tr]));
      tbody.replaceChildren(...r.instances.map((i) => keep.get(i.instance_id) || row(i)));
      if (!r.instances.length) tbody.append(h("tr", {}, h("td", { colspan: 7, class: "empty", text: "No instance registered yet." })));
    } catch (err) {
      listBox.show(err.text || err.message);
    }
  }
  ctx.every(refresh, 5000);
}
