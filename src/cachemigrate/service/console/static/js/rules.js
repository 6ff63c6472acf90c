// The filter rules of a task (docs/filters.md): one control per field of the API's `filter`
// extension object, by the same names. Nothing is checked here: the API's messages (400, naming
// the rule) are shown where the task is created.
import { field, h } from "./util.js";

// [API name, label, kind, hint]. Kinds: lines (one item per line), words (items separated by
// commas or spaces), pairs (one "from=to" per line), seconds, text.
const GROUPS = [
  ["Keys", [
    ["allow_key_prefix", "Move only keys with prefix", "lines", "allow_key_prefix: one prefix per line"],
    ["block_key_prefix", "Leave keys with prefix behind", "lines", "block_key_prefix: one prefix per line"],
    ["allow_key", "Move only keys named", "lines", "allow_key: one exact name per line"],
    ["block_key", "Leave keys named behind", "lines", "block_key: one exact name per line"],
    ["allow_key_suffix", "Move only keys with suffix", "lines", "allow_key_suffix: one suffix per line"],
    ["block_key_suffix", "Leave keys with suffix behind", "lines", "block_key_suffix: one suffix per line"],
    ["allow_key_regex", "Move only keys matching", "lines", "allow_key_regex: one regular expression per line (searched in the name)"],
    ["block_key_regex", "Leave keys matching behind", "lines", "block_key_regex: one regular expression per line"],
    ["rename_prefix", "Rename prefixes", "pairs", "rename_prefix: one old=new per line (the longest old prefix wins)"],
  ]],
  ["Databases", [
    ["allow_db", "Move only dbs", "words", "allow_db: db numbers, e.g. 0, 2"],
    ["block_db", "Leave dbs behind", "words", "block_db: db numbers"],
    ["db_map", "Map dbs", "pairs", "db_map: one source=target per line, e.g. 1=0"],
  ]],
  ["Types and commands", [
    ["allow_type", "Move only types", "words", "allow_type: string, list, set, zset, hash, stream, module"],
    ["block_type", "Leave types behind", "words", "block_type: the same names"],
    ["allow_command", "Forward only commands", "words", "allow_command: incremental phase and AOF, e.g. SET, HSET"],
    ["block_command", "Leave commands behind", "words", "block_command: e.g. FLUSHALL"],
    ["allow_command_group", "Forward only command groups", "words", "allow_command_group: e.g. STRING, HASH"],
    ["block_command_group", "Leave command groups behind", "words", "block_command_group: e.g. SCRIPTING"],
  ]],
  ["Expiry", [
    ["skip_expiring_within", "Leave keys expiring within (s)", "seconds", "skip_expiring_within: seconds"],
    ["max_ttl", "Cap TTLs at (s)", "seconds", "max_ttl: seconds; keys without a TTL get this one"],
  ]],
  ["Script", [
    ["function", "Lua function", "text", "function: RedisShake's function hook (DB, CMD, KEYS, ARGV, shake.call, shake.log)"],
  ]],
];

const lines = (text) => text.split("\n").map((l) => l.replace(/\r$/, "")).filter((l) => l !== "");
// A number where the text is one (the API takes db numbers and seconds as numbers); anything
// else goes as it is typed, for the API to name.
const numeric = (s) => (/^\d+(\.\d+)?$/.test(s) ? Number(s) : s);

function read(kind, control) {
  const text = control.value;
  if (kind === "lines") {
    const items = lines(text);
    return items.length ? items : undefined;
  }
  if (kind === "words") {
    const items = text.split(/[\s,]+/).filter(Boolean);
    return items.length ? items.map(numeric) : undefined;
  }
  if (kind === "pairs") {
    const items = lines(text);
    if (!items.length) return undefined;
    const out = {};
    for (const l of items) {
      const at = l.indexOf("=");
      const [k, v] = at < 0 ? [l, ""] : [l.slice(0, at), l.slice(at + 1)];
      // db numbers may be spaced out; a prefix is taken as typed.
      if (control.name === "db_map") out[k.trim()] = numeric(v.trim());
      else out[k] = v;
    }
    return out;
  }
  if (kind === "seconds") {
    const s = text.trim();
    return s ? numeric(s) : undefined;
  }
  return text.trim() ? text : undefined;
}

// The rules' fieldset; .value() is the `filter` object for the API (undefined: no rule given).
export function rulesForm() {
  const controls = [];
  const sets = GROUPS.map(([legend, rules]) => h(
    "fieldset",
    { class: rules.length > 1 ? "rules-group grid" : "rules-group" },
    h("legend", { text: legend }),
    rules.map(([name, label, kind, hint]) => {
      const multi = kind === "lines" || kind === "pairs" || kind === "text";
      const control = multi
        ? h("textarea", { name, rows: kind === "text" ? 6 : 2, spellcheck: "false" })
        : h("input", { name, spellcheck: "false", inputmode: kind === "seconds" ? "decimal" : undefined });
      controls.push([name, kind, control]);
      return field(label, control, hint);
    }),
  ));
  const box = h(
    "details",
    { class: "rules", id: "filter-rules" },
    h("summary", { text: "Filter rules (optional): what moves and under which name" }),
    h("p", { class: "hint", text: "Block rules first; an allow list given holds only what it names. Empty fields are no rule." }),
    sets,
  );
  box.value = () => {
    const out = {};
    for (const [name, kind, control] of controls) {
      const v = read(kind, control);
      if (v !== undefined) out[name] = v;
    }
    return Object.keys(out).length ? out : undefined;
  };
  return box;
}
