// Tasks: the project's migration tasks, filtered by name and status, a page at a time.
import { api, q } from "./api.js";
import { EXECUTING, STATUSES, badge, field, go, h, messages, select, typeOf, when } from "./util.js";

const PAGE = 10;

function progressCell(stats) {
  if (!stats) return h("td", { class: "progress-cell", text: "–" });
  const pct = Number(stats.full_migration_progress);
  return h(
    "td",
    { class: "progress-cell" },
    h("progress", { max: 100, value: pct, "aria-label": `full synchronization ${pct}%` }),
    h("span", { class: "pct", text: `${stats.full_migration_progress}%` }),
  );
}

export function render(main, params, ctx) {
  const name = params.get("name") || "";
  const status = params.get("status") || "";
  const page = Math.max(1, Number(params.get("page")) || 1);
  const box = messages();
  const nameInput = h("input", { name: "name", type: "search", value: name, maxlength: 64 });
  const statusSelect = select([["", "Any status"], ["FULLMIGRATING,INCRMIGEATING,MIGRATING", "Migrating (any phase)"], ...STATUSES.map((s) => [s, s])], status);
  statusSelect.name = "status";
  const filter = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Filter tasks" },
    field("Name contains", nameInput),
    field("Status", statusSelect),
    h("div", { class: "buttons" }, h("button", { type: "submit", text: "Filter" })),
  );
  filter.addEventListener("submit", (ev) => {
    ev.preventDefault();
    go(`#/tasks${q({ name: nameInput.value.trim(), status: statusSelect.value })}`);
  });
  statusSelect.addEventListener("change", () => filter.requestSubmit());

  const tbody = h("tbody");
  const table = h(
    "table",
    { class: "list tasks", "aria-describedby": "tasks-count" },
    h("caption", { class: "sr-only", text: "Migration tasks" }),
    h("thead", {}, h("tr", {}, ["Name", "Type", "Status", "Progress", "Source", "Target", "Created"].map((c) => h("th", { scope: "col", text: c })))),
    tbody,
  );
  const count = h("p", { id: "tasks-count", class: "count", "aria-live": "polite" });
  const prev = h("button", { type: "button", text: "← Newer", onclick: () => go(`#/tasks${q({ name, status, page: page - 1 })}`) });
  const next = h("button", { type: "button", text: "Older →", onclick: () => go(`#/tasks${q({ name, status, page: page + 1 })}`) });
  main.append(
    h("div", { class: "heading" }, h("h1", { text: "Migration tasks" }), h("a", { class: "button primary", href: "#/create", text: "Create task" })),
    filter,
    box,
    h("div", { class: "scroll" }, table),
    h("nav", { class: "pager", "aria-label": "Pages of tasks" }, prev, count, next),
  );

  const refresh = async () => {
    let list;
    try {
      list = await api("GET", `/migration-tasks${q({ offset: (page - 1) * PAGE, limit: PAGE, name, status })}`);
      box.clear();
    } catch (err) {
      box.show(err.text || err.message);
      return;
    }
    const stats = await Promise.all(
      list.migration_tasks.map((t) =>
        t.status === "CREATING" || t.status === "RUNNING" ? null : api("GET", `/migration-task/${t.task_id}/stats`).catch(() => null),
      ),
    );
    tbody.replaceChildren(
      ...list.migration_tasks.map((t, i) =>
        h(
          "tr",
          { data: { task: t.task_id } },
          h("th", { scope: "row" }, h("a", { href: `#/task/${encodeURIComponent(t.task_id)}`, text: t.task_name })),
          h("td", { text: typeOf(t) }),
          h("td", {}, badge(t.status)),
          progressCell(stats[i]),
          h("td", { text: t.source_instance_name || t.data_source || "–" }),
          h("td", { text: t.target_instance_name || t.target_instance_addrs || "–" }),
          h("td", { text: when(t.created_at) }),
        ),
      ),
    );
    if (!list.migration_tasks.length) {
      tbody.append(h("tr", {}, h("td", { colspan: 7, class: "empty", text: name || status ? "No task matches the filter." : "No migration task yet: create one." })));
    }
    const first = list.count ? (page - 1) * PAGE + 1 : 0;
    count.textContent = `Tasks ${first}–${(page - 1) * PAGE + list.migration_tasks.length} of ${list.count}`;
    prev.disabled = page <= 1;
    next.disabled = page * PAGE >= list.count;
    table.dataset.live = list.migration_tasks.some((t) => EXECUTING.has(t.status)) ? "yes" : "no";
  };
  ctx.every(refresh, 2000);
}
