// The console's shell: hash routes, sign-in, the polling every page uses.
import { ApiError, session, signInWithKeys, signInWithToken, signOut } from "./api.js";
import { field, go, h, messages } from "./util.js";

const main = document.getElementById("main");
const PAGES = {
  tasks: "./tasks.js",
  task: "./task.js",
  create: "./create.js",
  instances: "./instances.js",
  backups: "./backups.js",
};
let cleanups = [];
let signInNote = "";

// A page's context: every(fn, ms) polls while the page is shown (never two calls at once).
function context() {
  const timers = [];
  cleanups.push(() => timers.forEach(clearTimeout));
  return {
    every(fn, ms) {
      let stopped = false;
      cleanups.push(() => {
        stopped = true;
      });
      const tick = async () => {
        if (stopped) return;
        try {
          await fn();
        } catch (err) {
          console.warn("refresh failed", err);
        }
        if (!stopped) timers.push(setTimeout(tick, document.hidden ? ms * 4 : ms));
      };
      return tick();
    },
  };
}

function parse() {
  const raw = location.hash.replace(/^#/, "") || "/tasks";
  const [path, query = ""] = raw.split("?");
  return { parts: path.split("/").filter(Boolean), params: new URLSearchParams(query) };
}

function shell(signedIn) {
  const s = session();
  document.getElementById("nav").hidden = !signedIn;
  document.getElementById("who").hidden = !signedIn;
  document.getElementById("who-project").textContent = s ? `Project ${s.projectId}` : "";
  const { parts } = parse();
  for (const a of document.querySelectorAll("[data-nav]")) {
    const here = a.dataset.nav === parts[0] || (a.dataset.nav === "tasks" && parts[0] === "task");
    if (here) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

async function route() {
  cleanups.forEach((c) => c());
  cleanups = [];
  const { parts, params } = parse();
  if (parts[0] === "signin" && params.get("token")) {
    // A sign-in link (make demo prints one): take the token, then drop it from the address bar.
    const project = params.get("project") || "";
    const token = params.get("token");
    history.replaceState(null, "", `${location.pathname}#/signin`);
    try {
      await signInWithToken(project, token);
      go("#/tasks");
      return;
    } catch (err) {
      signInNote = err.text || err.message;
    }
  }
  if (!session() || parts[0] === "signin") {
    shell(false);
    renderSignIn();
    return;
  }
  shell(true);
  const ctx = context();
  const mine = cleanups;
  const page = parts[0] || "tasks";
  // Each page's module loads when it is first shown: a link to a task loads only what it needs.
  let mod;
  try {
    mod = await import(PAGES[page] || PAGES.tasks);
  } catch (err) {
    main.replaceChildren(h("p", { class: "msg error", role: "alert", text: `The page cannot load: ${err.message}` }));
    return;
  }
  if (cleanups !== mine) return; // another route was taken meanwhile
  main.replaceChildren();
  if (page === "task" && parts[1]) mod.render(main, decodeURIComponent(parts[1]), params, ctx);
  else mod.render(main, params, ctx);
  const heading = main.querySelector("h1");
  if (heading) document.title = `${heading.textContent} – cachemigrate`;
}

function renderSignIn() {
  document.title = "Sign in – cachemigrate";
  const box = messages();
  if (signInNote) box.show(signInNote);
  signInNote = "";
  const last = localStorage.getItem("cachemigrate.project") || "";
  const project = h("input", { name: "project", autocomplete: "username", required: true, value: last, spellcheck: "false" });
  const ak = h("input", { name: "ak", autocomplete: "off", spellcheck: "false" });
  const sk = h("input", { name: "sk", type: "password", autocomplete: "current-password" });
  const token = h("textarea", { name: "token", rows: 3, spellcheck: "false" });
  const useKeys = h("input", { type: "radio", name: "how", value: "keys", checked: true, id: "how-keys" });
  const useToken = h("input", { type: "radio", name: "how", value: "token", id: "how-token" });
  const keysPart = h("div", { class: "keys" }, field("Access key (AK)", ak), field("Secret key (SK)", sk));
  const tokenPart = h("div", { class: "token", hidden: true }, field("Token (X-Auth-Token)", token));
  const sync = () => {
    keysPart.hidden = !useKeys.checked;
    tokenPart.hidden = useKeys.checked;
  };
  useKeys.addEventListener("change", sync);
  useToken.addEventListener("change", sync);
  const submit = h("button", { type: "submit", class: "primary", text: "Sign in" });
  const form = h(
    "form",
    { class: "card signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title", text: "Sign in" }),
    h("p", { class: "hint", text: "The console calls the service's API as your project. The secret key is used once, in this page, to sign the request for a token; it is never sent nor kept." }),
    field("Project ID", project),
    h(
      "fieldset",
      { class: "inline" },
      h("legend", { text: "Sign in with" }),
      h("label", { for: "how-keys" }, useKeys, " access key and secret key"),
      h("label", { for: "how-token" }, useToken, " a token"),
    ),
    keysPart,
    tokenPart,
    h("div", { class: "buttons" }, submit),
    box,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    box.clear();
    try {
      if (useKeys.checked) await signInWithKeys(project.value.trim(), ak.value.trim(), sk.value);
      else await signInWithToken(project.value.trim(), token.value.trim());
      localStorage.setItem("cachemigrate.project", project.value.trim());
      sk.value = "";
      go("#/tasks");
    } catch (err) {
      box.show(err instanceof ApiError ? err.text : String(err));
    } finally {
      submit.disabled = false;
    }
  });
  main.replaceChildren(form);
  (last ? (useKeys.checked ? ak : token) : project).focus();
}

document.getElementById("sign-out").addEventListener("click", () => {
  signOut();
  go("#/signin");
});
window.addEventListener("cm-signed-out", (ev) => {
  signOut();
  signInNote = `Signed out: ${ev.detail}`;
  go("#/signin");
});
window.addEventListener("hashchange", route);
route();
