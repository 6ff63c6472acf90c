// Task detail: phase, progress, live charts, source/target, actions, verifications, the log.
import { ApiError, api, q } from "./api.js";
import { LineChart } from "./chart.js";
import { EXECUTING, badge, bytes, confirm, field, go, h, messages, num, select, typeOf, when } from "./util.js";

const POLL_MS = 1500;
const MAX_SAMPLES = 900; // about 20 minutes at POLL_MS
const LOG_PAGE = 20;

const PHASES = {
  CREATING: "being created",
  RUNNING: "created, not configured yet",
  MIGRATING: "importing the backup files",
  FULLMIGRATING: "full synchronization",
  INCRMIGEATING: "incremental synchronization (following the source's writes)",
  TERMINATING: "stopping",
  TERMINATED: "stopped",
  SUCCESS: "finished",
  FAILED: "failed",
  MIGRATION_FAILED: "failed",
};

// Samples taken by this browser tab while the task executes (the API keeps the current rates).
function loadSamples(id) {
  try {
    return JSON.parse(sessionStorage.getItem(`cachemigrate.samples.${id}`) || "[]");
  } catch {
    return [];
  }
}

function saveSamples(id, samples) {
  try {
    sessionStorage.setItem(`cachemigrate.samples.${id}`, JSON.stringify(samples));
  } catch {
    /* storage full: the chart still has them in memory */
  }
}

function endpointCard(title, inst) {
  const rows = inst
    ? [
        ["Name", inst.name || "(an address, not a registered instance)"],
        ["Address", inst.addrs || "–"],
        ["Instance ID", inst.id || "–"],
        ["Database", inst.db ?? "all"],
        ["TLS", inst.enable_ssl ? (inst.ssl_verify === false ? "yes, certificate not verified" : "yes") : "no"],
        ["ACL user", inst.access_user || "default"],
      ]
    : [["", "–"]];
  return h("section", { class: "card endpoint", "aria-label": title }, h("h3", { text: title }), dl(rows));
}

function dl(rows) {
  return h("dl", {}, rows.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { text: v })]));
}

// The task's filter rules as the API stores them (docs/filters.md), by the API's names.
function ruleText(v) {
  if (Array.isArray(v)) return v.join(", ");
  if (v && typeof v === "object") return Object.entries(v).map(([k, x]) => `${k} → ${x}`).join(", ");
  return String(v);
}

function rulesCard(rules) {
  const entries = Object.entries(rules || {});
  if (!entries.length) return h("p", { class: "hint", text: "No filter rules: every key moves, under its own name." });
  return h("div", { class: "card rules-view" }, h("dl", {}, entries.flatMap(([k, v]) => [
    h("dt", { text: k }),
    k === "function" ? h("dd", {}, h("pre", { text: v })) : h("dd", { text: ruleText(v) }),
  ])));
}

function counts(c) {
  return `missing ${c.missing}, extra ${c.extra}, type ${c.type}, value ${c.value}, ttl ${c.ttl}`;
}

export function render(main, id, params, ctx) {
  const path = `/migration-task/${encodeURIComponent(id)}`;
  const title = h("h1", { text: "Migration task" });
  const head = h("div", { class: "heading" }, title);
  const top = messages();
  const statusLine = h("p", { class: "status-line" });
  const progress = h("progress", { max: 100, value: 0, id: "full-progress" });
  const progressText = h("span", { class: "pct" });
  const facts = h("div", { class: "facts" });
  const numbers = h("div", { class: "numbers", "aria-live": "off" });
  const charts = {
    keys: new LineChart({ id: "keys", title: "Keys/s (target ops/s)", format: (v) => num(Math.round(v)) }),
    mb: new LineChart({ id: "mb", title: "MB/s written to the target", format: (v) => `${num(v.toFixed(2))}` }),
    lag: new LineChart({ id: "lag", title: "Incremental lag (bytes behind the source)", format: (v) => bytes(v) }),
  };
  const chartNote = h("p", { class: "hint" });
  const endpoints = h("div", { class: "endpoints" });
  const rulesBox = h("div", { id: "task-rules" });
  const actionBox = messages();
  actionBox.id = "action-messages";
  const verifyBody = h("tbody");
  const verifyBox = messages();
  const logBody = h("tbody");
  const logLevel = select([["", "All levels"], ["INFO", "INFO"], ["WARN", "WARN"], ["ERROR", "ERROR"]], params.get("level") || "");
  logLevel.name = "log_level";
  const logCount = h("p", { class: "count", "aria-live": "polite" });
  let logPage = 1;
  const logPrev = h("button", { type: "button", text: "← Newer", onclick: () => { logPage -= 1; refreshLog(); } });
  const logNext = h("button", { type: "button", text: "Older →", onclick: () => { logPage += 1; refreshLog(); } });
  logLevel.addEventListener("change", () => { logPage = 1; refreshLog(); });

  let task = null;
  let samples = loadSamples(id);

  const button = (label, handler, cls = "") => {
    const b = h("button", { type: "button", class: cls, text: label });
    b.addEventListener("click", () => handler(b));
    return b;
  };
  const run = async (b, fn) => {
    b.disabled = true;
    actionBox.clear();
    try {
      const text = await fn();
      if (text) actionBox.show(text, "ok");
      await refresh();
    } catch (err) {
      actionBox.show(err.text || err.message);
    } finally {
      b.disabled = false;
    }
  };
  const src = () => task?.source_instance?.name || task?.source_instance?.addrs || "the source";
  const tgt = () => task?.target_instance?.name || task?.target_instance?.addrs || "the target";

  const actions = h(
    "div",
    { class: "actions", role: "group", "aria-label": "Task actions" },
    button("Stop", async (b) => {
      const ok = await confirm({
        title: `Stop ${task.task_name}?`,
        body: [`The migration stops copying from ${src()} to ${tgt()}: writes made to the source from now on do not reach the target. The keys already copied stay in the target. The task can be restarted later (it synchronizes in full again, then resumes following the source).`],
        ok: "Stop the migration",
        danger: true,
      });
      if (ok) await run(b, async () => { await api("POST", `${path}/stop`); return "Stop requested: the task is stopping."; });
    }),
    button("Restart", async (b) => {
      const ok = await confirm({
        title: `Restart ${task.task_name}?`,
        body: [`The task runs again from ${src()} to ${tgt()}: a full synchronization (keys in the target are overwritten by the source's), then, for a full + incremental task, it follows the source's writes.`],
        ok: "Restart",
      });
      if (!ok) return;
      await run(b, async () => {
        const r = await api("POST", "/migration-tasks/batch-restart", { migration_tasks: [id] });
        const res = r.migration_tasks[0];
        if (res.result !== "success") throw new ApiError(400, res.error_code, res.error_msg);
        return "Restarted.";
      });
    }),
    button("Verify", async (b) => {
      const mode = select([["full", "every key (full)"], ["sampled", "a random sample"]], "full");
      mode.name = "mode";
      const sample = h("input", { name: "sample", type: "number", min: 1, max: 100000, value: "1000" });
      const rounds = h("input", { name: "rounds", type: "number", min: 0, max: 10, value: "3" });
      const repair = h("input", { name: "repair", type: "checkbox", id: "verify-repair" });
      const v = await confirm({
        title: `Verify ${task.task_name}?`,
        body: [
          `Compares the keys of ${tgt()} with ${src()} (type, value, TTL), in the background${task.filter ? ", through the task's filter rules" : ""}. Keys that differ are read again (writes in flight converge); nothing is changed unless you tick repair.`,
          field("Keys to compare", mode),
          field("Sample size (with a sample)", sample),
          field("Re-checks of a difference", rounds),
          h("div", { class: "field check" }, repair, h("label", { for: "verify-repair", text: " Repair: copy each key still different again from the source (and delete keys the source lacks)" })),
        ],
        ok: "Start verification",
      });
      if (!v) return;
      const body = { mode: v.mode, rounds: Number(v.rounds), repair: v.repair };
      if (v.mode === "sampled") body.sample = Number(v.sample);
      await run(b, async () => {
        await api("POST", `${path}/verifications`, body);
        return "Verification started: its report appears under Verifications.";
      });
    }),
    button("Exchange IP", async (b) => {
      const ips = [task.source_instance?.ip, task.target_instance?.ip].filter(Boolean).join(", ");
      const input = h("input", { name: "ips", value: ips, required: true });
      const v = await confirm({
        title: `Exchange the addresses of ${src()} and ${tgt()}?`,
        body: [
          `The cutover: replication stops, clients see a short read-only time and a brief disconnect, and the addresses below move so that the clients of ${src()} reach ${tgt()}. The task ends (TERMINATED); Rollback IP moves them back.`,
          field("IP addresses to switch (comma-separated)", input),
        ],
        ok: "Exchange the addresses",
        danger: true,
      });
      if (!v) return;
      const list = v.ips.split(",").map((s) => s.trim()).filter(Boolean);
      await run(b, async () => {
        await api("POST", `${path}/exchange-ip`, { exchanged_ip: list, is_exchange_domain: false });
        return "Address exchange requested.";
      });
    }),
    button("Rollback IP", async (b) => {
      const ok = await confirm({
        title: `Roll back the address exchange of ${task.task_name}?`,
        body: [`The addresses move back: clients reach ${src()} again, as before the exchange.`],
        ok: "Roll back",
        danger: true,
      });
      if (ok) await run(b, async () => { await api("POST", `${path}/rollback-ip`); return "Rollback requested."; });
    }),
    button("Delete", async (b) => {
      const ok = await confirm({
        title: `Delete ${task.task_name}?`,
        body: [`The task, its log and its verification reports are removed from the service. The data in ${tgt()} and ${src()} is not touched. A running task must be stopped first.`],
        ok: "Delete the task",
        danger: true,
      });
      if (ok) {
        await run(b, async () => {
          await api("DELETE", "/migration-tasks/delete", { task_id_list: [id] });
          go("#/tasks");
        });
      }
    }, "danger"),
  );

  main.append(
    h("p", { class: "crumbs" }, h("a", { href: "#/tasks", text: "← All tasks" })),
    head,
    top,
    statusLine,
    h("div", { class: "progress-row" }, h("label", { for: "full-progress", text: "Full synchronization" }), progress, progressText),
    actions,
    actionBox,
    h("section", { "aria-labelledby": "h-live" }, h("h2", { id: "h-live", text: "Throughput and lag" }), numbers, h("div", { class: "charts" }, charts.keys.figure, charts.mb.figure, charts.lag.figure), chartNote),
    h("section", { "aria-labelledby": "h-ends" }, h("h2", { id: "h-ends", text: "Source and target" }), endpoints, facts),
    h("section", { "aria-labelledby": "h-rules" }, h("h2", { id: "h-rules", text: "Filter rules" }), rulesBox),
    h(
      "section",
      { "aria-labelledby": "h-ver" },
      h("h2", { id: "h-ver", text: "Verifications" }),
      verifyBox,
      h("div", { class: "scroll" }, h("table", { class: "list", id: "verifications" },
        h("thead", {}, h("tr", {}, ["Started", "Status", "Mode", "Keys compared", "Still different", "First look found", "Converged", "Repaired"].map((c) => h("th", { scope: "col", text: c })))),
        verifyBody)),
    ),
    h(
      "section",
      { "aria-labelledby": "h-log" },
      h("h2", { id: "h-log", text: "Log" }),
      h("div", { class: "filters" }, field("Level", logLevel)),
      h("div", { class: "scroll" }, h("table", { class: "list log", id: "log" },
        h("thead", {}, h("tr", {}, ["Time", "Level", "Code", "Message"].map((c) => h("th", { scope: "col", text: c })))),
        logBody)),
      h("nav", { class: "pager", "aria-label": "Pages of the log" }, logPrev, logCount, logNext),
    ),
  );

  async function refreshLog() {
    const r = await api("GET", `${path}/logs${q({ offset: (logPage - 1) * LOG_PAGE, limit: LOG_PAGE, log_level: logLevel.value })}`);
    logBody.replaceChildren(
      ...r.migration_logs.map((e) =>
        h("tr", { data: { level: e.log_level } }, h("td", { text: when(e.created_at) }), h("td", {}, h("span", { class: `level ${e.log_level}`, text: e.log_level })), h("td", { text: e.log_code }), h("td", { class: "message", text: e.message })),
      ),
    );
    if (!r.migration_logs.length) logBody.append(h("tr", {}, h("td", { colspan: 4, class: "empty", text: "No log lines at this level." })));
    const first = r.log_num ? (logPage - 1) * LOG_PAGE + 1 : 0;
    logCount.textContent = `Lines ${first}–${(logPage - 1) * LOG_PAGE + r.migration_logs.length} of ${r.log_num}`;
    logPrev.disabled = logPage <= 1;
    logNext.disabled = logPage * LOG_PAGE >= r.log_num;
  }

  async function refreshVerifications() {
    let r;
    try {
      r = await api("GET", `${path}/verifications${q({ limit: 10 })}`);
    } catch (err) {
      verifyBox.show(err.text || err.message);
      return;
    }
    verifyBox.clear();
    verifyBody.replaceChildren(
      ...r.verifications.map((v) => {
        const rep = v.report;
        return h(
          "tr",
          { data: { verification: v.verification_id, status: v.status } },
          h("td", { text: when(v.created_at) }),
          h("td", {}, badge(v.status === "SUCCESS" && rep && !rep.ok ? "DIFFERENT" : v.status), v.error_message ? h("div", { class: "msg error", text: v.error_message }) : null),
          h("td", { text: v.mode === "sampled" ? `sample of ${num(v.sample)}` : "full" }),
          h("td", { text: rep ? num(rep.keys_compared) : "–" }),
          h("td", { text: rep ? `${num(rep.mismatches)} (${counts(rep.by_kind)})` : "–" }),
          h("td", { text: rep ? counts(rep.first_pass) : "–" }),
          h("td", { text: rep ? num(rep.converged) : "–" }),
          h("td", { text: rep ? (v.repair ? `${num(rep.repaired)} (failed ${num(rep.repair_failed)})` : "no repair asked") : "–" }),
        );
      }),
    );
    if (!r.verifications.length) verifyBody.append(h("tr", {}, h("td", { colspan: 8, class: "empty", text: "Not verified yet: Verify compares the target with the source." })));
  }

  function showNumbers(stats) {
    const mbps = Number(stats.target_input_kbps) / 1024;
    numbers.replaceChildren(
      dl([
        ["Keys in the source", num(stats.source_dbsize)],
        ["Keys in the target", num(stats.target_dbsize)],
        ["Target ops/s", num(stats.target_ops)],
        ["Written to the target", `${num(stats.target_input_kbps)} KB/s (${num(mbps.toFixed(2))} MB/s)`],
        ["Lag behind the source", `${num(stats.offset)} bytes`],
        ["Migrating now", stats.is_migrating ? "yes" : "no"],
      ]),
    );
    for (const [k, v] of [["source", stats.source_dbsize], ["target", stats.target_dbsize], ["ops", stats.target_ops], ["kbps", stats.target_input_kbps], ["offset", stats.offset]]) {
      numbers.dataset[k] = v;
    }
    if (stats.is_migrating) {
      samples.push({ t: Date.now(), ops: Number(stats.target_ops), mb: mbps, lag: Number(stats.offset) });
      if (samples.length > MAX_SAMPLES) samples = samples.slice(-MAX_SAMPLES);
      saveSamples(id, samples);
    }
    charts.keys.update(samples.map((s) => ({ t: s.t, v: s.ops })));
    charts.mb.update(samples.map((s) => ({ t: s.t, v: s.mb })));
    charts.lag.update(samples.map((s) => ({ t: s.t, v: s.lag })));
    chartNote.textContent = stats.is_migrating
      ? `Sampled from the API's stats every ${POLL_MS / 1000} s while this page is open.`
      : samples.length
        ? "The task is not migrating now: the charts keep what this browser sampled while it was."
        : "The task is not migrating now: the charts fill while it runs (restart it to see them move).";
  }

  async function refresh() {
    // Every request of a refresh at once: one round trip's wait, not four.
    const stats = api("GET", `${path}/stats`);
    const rest = Promise.allSettled([refreshLog(), refreshVerifications()]);
    stats.catch(() => null);
    rest.catch(() => null);
    try {
      task = await api("GET", path);
    } catch (err) {
      await rest.catch(() => null);
      verifyBox.clear(); // the one message is the task's own, at the top
      top.show(err.text || err.message);
      return;
    }
    top.clear();
    title.textContent = task.task_name;
    document.title = `${task.task_name} – cachemigrate`;
    statusLine.replaceChildren(h("span", {},
      badge(task.status),
      " ",
      h("span", { class: "phase", text: `Phase: ${PHASES[task.status] || task.status}` }),
      task.task_status ? h("span", { class: "sub", text: ` · ${task.task_status}` }) : null,
    ), task.error_message ? h("p", { class: "msg error", text: task.error_message }) : "");
    endpoints.replaceChildren(
      task.migration_type === "backupfile_import"
        ? h("section", { class: "card endpoint", "aria-label": "Source" }, h("h3", { text: "Source" }), dl([
            ["From", task.backup_files?.file_source === "backup_record" ? "a backup record" : `bucket ${task.backup_files?.bucket_name || "–"}`],
            ["Backup", task.backup_files?.backup_id || "–"],
            ["Files", (task.backup_files?.files || []).map((f) => f.file_name).join(", ") || "–"],
          ]))
        : endpointCard("Source", task.source_instance),
      endpointCard("Target", task.target_instance),
    );
    facts.replaceChildren(dl([
      ["Type", typeOf(task)],
      ["Task ID", task.task_id],
      ["Created", when(task.created_at)],
      ["Updated", when(task.updated_at)],
      ["Resume after a restart", task.resume_mode],
      ["Bandwidth limit", task.bandwidth_limit_mb ? `${task.bandwidth_limit_mb} MB/s` : "unlimited"],
    ]));
    rulesBox.replaceChildren(rulesCard(task.filter));
    main.dataset.status = task.status;
    if (task.status !== "CREATING" && task.status !== "RUNNING") {
      const st = await stats;
      progress.value = Number(st.full_migration_progress);
      progressText.textContent = `${st.full_migration_progress}%`;
      showNumbers(st);
    } else {
      showNumbers({ source_dbsize: "", target_dbsize: "", target_ops: "", target_input_kbps: "", offset: "", is_migrating: false });
    }
    const [logDone] = await rest;
    if (logDone.status === "rejected") throw logDone.reason;
    // The first render with the API's numbers (measured by the browser tests).
    if (!performance.getEntriesByName("cm-task-rendered").length) performance.mark("cm-task-rendered");
  }

  ctx.every(refresh, POLL_MS);
}
