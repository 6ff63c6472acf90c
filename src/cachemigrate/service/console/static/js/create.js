// Create a task: online full, online full + incremental, bucket import or backup-record import.
// Nothing is checked here that the API checks: its messages are shown as it gives them.
import { ApiError, api } from "./api.js";
import { rulesForm } from "./rules.js";
import { field, go, h, messages, select } from "./util.js";

const KINDS = [
  ["incremental", "Online migration, full + incremental", "Copies every key, then follows the source's writes until you stop it (for a cutover)."],
  ["full", "Online migration, full", "Copies every key of the source once, then ends."],
  ["bucket", "Import backup files from a bucket", "Reads RDB/AOF files (or archives of them) from a bucket the operator configured."],
  ["record", "Import a backup record", "Imports a backup taken by this service (Backups)."],
];

// An endpoint picker: a registered instance or an address typed in.
function picker(legend, instances, prefix, chosen) {
  const choice = select([...instances.map((i) => [i.instance_id, `${i.name} (${i.ip}:${i.port})`]), ["", "Another address…"]]);
  choice.name = `${prefix}_instance`;
  if (chosen) choice.value = chosen;
  const addrs = h("input", { name: `${prefix}_addrs`, placeholder: "host:port", spellcheck: "false" });
  const password = h("input", { name: `${prefix}_password`, type: "password", autocomplete: "new-password" });
  const tls = h("input", { type: "checkbox", name: `${prefix}_tls`, id: `${prefix}-tls` });
  const db = h("input", { name: `${prefix}_db`, inputmode: "numeric", placeholder: "all" });
  const manual = h("div", { class: "manual" }, field("Address", addrs, "host:port[,host:port...] (a cluster's nodes)"), field("Password", password, "Write-only: never shown again"), h("div", { class: "field check" }, tls, h("label", { for: `${prefix}-tls`, text: " TLS" })));
  const sync = () => {
    manual.hidden = choice.value !== "";
  };
  choice.addEventListener("change", sync);
  sync();
  const set = h("fieldset", {}, h("legend", { text: legend }), field("Instance", choice), manual, prefix === "source" ? field("Database", db, "Only this db (empty: all)") : null);
  set.value = () => {
    const body = {};
    if (choice.value) body.id = choice.value;
    else {
      body.addrs = addrs.value.trim();
      if (password.value) body.password = password.value;
      if (tls.checked) body.enable_ssl = true;
    }
    if (prefix === "source" && db.value.trim()) body.db = db.value.trim();
    return body;
  };
  return set;
}

export async function render(main, params) {
  const box = messages();
  main.append(h("h1", { text: "Create a migration task" }), box);
  let instances = [];
  let backups = [];
  try {
    instances = (await api("GET", "/instances")).instances;
    const lists = await Promise.all(
      instances.map((i) => api("GET", `/instances/${i.instance_id}/backups?limit=100`).then((r) => r.backup_record_response.map((b) => ({ ...b, instance: i }))).catch(() => [])),
    );
    backups = lists.flat().filter((b) => b.status === "succeed");
  } catch (err) {
    box.show(err.text || err.message);
    return;
  }
  const wanted = params.get("backup");
  let kind = wanted ? "record" : params.get("kind") || "incremental";
  const radios = h(
    "fieldset",
    { class: "kinds" },
    h("legend", { text: "What to do" }),
    KINDS.map(([value, label, hint]) => {
      const r = h("input", { type: "radio", name: "kind", value, id: `kind-${value}`, checked: value === kind, "aria-describedby": `kind-${value}-hint` });
      r.addEventListener("change", () => {
        kind = value;
        sync();
      });
      return h("div", { class: "kind" }, r, h("label", { for: `kind-${value}`, text: ` ${label}` }), h("small", { id: `kind-${value}-hint`, class: "hint", text: hint }));
    }),
  );
  const name = h("input", { name: "task_name", required: true, spellcheck: "false" });
  const description = h("input", { name: "description" });
  const source = picker("Source", instances, "source");
  const target = picker("Target", instances, "target", instances.length > 1 ? instances[1].instance_id : undefined);
  const resume = select([["auto", "resume automatically"], ["manual", "fail the task (resume by hand)"]], "auto");
  resume.name = "resume_mode";
  const bandwidth = h("input", { name: "bandwidth_limit_mb", inputmode: "numeric", placeholder: "unlimited" });
  const online = h("div", {}, source, h("fieldset", {}, h("legend", { text: "Options" }), field("When the service restarts", resume), field("Bandwidth limit (MB/s)", bandwidth, "1 to 10240; empty: unlimited")));
  const bucket = h("input", { name: "bucket_name", spellcheck: "false" });
  const files = h("textarea", { name: "files", rows: 3, spellcheck: "false" });
  const bucketPart = h("fieldset", {}, h("legend", { text: "Backup files" }), field("Bucket", bucket, "A bucket name from the service's configuration"), field("Files", files, "One file name per line, relative to the bucket (.rdb, .aof, .manifest, .zip, .tar.gz)"));
  const record = select(backups.map((b) => [b.backup_id, `${b.backup_name} – ${b.instance.name}, ${b.created_at}`]));
  record.name = "backup_id";
  if (wanted) record.value = wanted;
  const recordPart = h("fieldset", {}, h("legend", { text: "Backup record" }), backups.length ? field("Backup", record) : h("p", { class: "hint", text: "No finished backup yet: take one on the Backups page." }));
  const rules = rulesForm();
  const submit = h("button", { type: "submit", class: "primary", text: "Create task" });
  const result = messages();
  const form = h(
    "form",
    { class: "card create", "aria-label": "New migration task", novalidate: true },
    radios,
    field("Task name", name, "4 to 64 letters, digits, _ or -"),
    field("Description", description),
    online,
    bucketPart,
    recordPart,
    target,
    rules,
    h("div", { class: "buttons" }, submit),
    result,
  );
  const sync = () => {
    online.hidden = kind !== "incremental" && kind !== "full";
    bucketPart.hidden = kind !== "bucket";
    recordPart.hidden = kind !== "record";
  };
  sync();
  // An online task is made in two calls; when the second fails the first one's task is kept and
  // configured by the next submit.
  let created = null;
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    result.clear();
    try {
      let id;
      if (kind === "incremental" || kind === "full") {
        if (!created || created.name !== name.value.trim()) {
          const r = await api("POST", "/migration/instance", {
            name: name.value.trim(), description: description.value, vpc_id: "local", subnet_id: "local", security_group_id: "local",
          });
          created = { id: r.instance_id, name: name.value.trim() };
        }
        const body = {
          migration_method: kind === "incremental" ? "incremental_migration" : "full_amount_migration",
          resume_mode: resume.value,
          source_instance: source.value(),
          target_instance: target.value(),
        };
        if (bandwidth.value.trim()) body.bandwidth_limit_mb = bandwidth.value.trim();
        const filter = rules.value();
        if (filter) body.filter = filter;
        try {
          await api("POST", `/migration/${created.id}/task`, body);
        } catch (err) {
          const note = `the task ${created.name} exists but is not configured: correct the form and press Create task again, or delete it from the task list.`;
          throw new ApiError(err.status, "", `${err.text} – ${note}`);
        }
        id = created.id;
      } else {
        const body = {
          task_name: name.value.trim(), description: description.value, migration_type: "backupfile_import",
          migration_method: "full_amount_migration", target_instance: target.value(),
        };
        body.backup_files = kind === "bucket"
          ? { file_source: "self_build_obs", bucket_name: bucket.value.trim(), files: files.value.split("\n").map((f) => f.trim()).filter(Boolean).map((file_name) => ({ file_name })) }
          : { file_source: "backup_record", backup_id: record.value };
        const filter = rules.value();
        if (filter) body.filter = filter;
        id = (await api("POST", "/migration-task", body)).id;
      }
      go(`#/task/${encodeURIComponent(id)}`);
    } catch (err) {
      result.show(err.text || err.message);
    } finally {
      submit.disabled = false;
    }
  });
  main.append(form);
  name.focus();
}
