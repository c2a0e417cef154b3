/* Converse console: small progressive enhancement over server-rendered pages. Every action goes
   through /console/api/v1/... (the REST API's own handlers, session cookie + CSRF header) and the
   page updates itself from the answer. No framework, no build step. */
(function () {
  "use strict";
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const CSRF = ($('meta[name="csrf-token"]') || {}).content || "";
  const STATUS = { setup: "Setup", active: "Active", inactive: "Inactive", error: "Error" };
  // Same wording as the server's `humanize` filter (control/console/views.py).
  const PHRASES = [
    [/POST \/api\/v1\/channels\/[\w-]+\/activate to/g, "Activate to"],
    [/POST \/api\/v1\/channels\/[\w-]+\/verify/g, "Re-verify"],
    [/\s*\(GET \/api\/v1\/channels\/[\w-]+\/numbers, then PATCH phone_number\)/g, ""],
    [/\s*\((?:agent_id|flow_id|allowed_origins|PATCH phone_number)\)/g, ""],
  ];
  function humanize(text) {
    let t = text || "";
    PHRASES.forEach(([re, words]) => { t = t.replace(re, words); });
    return t.charAt(0).toUpperCase() + t.slice(1);
  }

  async function api(method, path, body) {
    const init = { method, credentials: "same-origin",
                   headers: { "Accept": "application/json", "X-CSRF-Token": CSRF } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch("/console/api/v1" + path, init);
    } catch (err) {
      return { ok: false, status: 0, data: { error: "network", message: "The control plane did not answer: " + err.message } };
    }
    let data = null;
    const text = await response.text();
    if (text) { try { data = JSON.parse(text); } catch (_) { data = { message: text }; } }
    if (response.status === 401) { location.href = "/console/login?next=" + encodeURIComponent(location.pathname); }
    return { ok: response.ok, status: response.status, data: data || {} };
  }

  async function post(url, body) {   // console-local JSON endpoints (not the API bridge)
    const r = await fetch(url, { method: "POST", credentials: "same-origin", body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": CSRF } });
    return { ok: r.ok, status: r.status, data: await r.json().catch(() => ({})) };
  }

  function toast(text) {
    const t = $("#toast");
    if (!t) return;
    t.textContent = text;
    t.classList.add("show");
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => t.classList.remove("show"), 2500);
  }

  // ---------------------------------------------------------------- errors next to their field
  function clearErrors(root) {
    $$("[data-error-for]", root).forEach((el) => { el.hidden = true; el.textContent = ""; });
    $$("[aria-invalid]", root).forEach((el) => el.removeAttribute("aria-invalid"));
    $$(".alert", root).forEach((el) => { el.hidden = true; el.textContent = ""; el.classList.remove("ok"); });
  }

  function fieldKey(path) {          // "$.credentials.auth_token" -> "auth_token"; "$.allowed_origins[2]" -> "allowed_origins"
    let p = (path || "").replace(/^\$\.?/, "").replace(/\[.*$/, "");
    if (p.startsWith("credentials.")) p = p.slice("credentials.".length);
    return p;
  }

  /* Show an API error at the field it names (inside root, visible or not), else in the alert.
     Returns the element that got the message. */
  function showError(root, data, alertEl) {
    const message = data.message || "Something went wrong.";
    const paths = (data.fields && data.fields.length ? data.fields : [data.field]).filter(Boolean);
    let shown = null;
    for (const path of paths) {
      const key = fieldKey(path);
      const candidates = [key, key.split(".")[0]];
      for (const k of candidates) {
        const el = $$('[data-error-for="' + k + '"]', root).find((e) => !e.closest("[hidden][data-creds]"));
        if (el) {
          el.textContent = message;
          el.hidden = false;
          const input = el.parentElement.querySelector("input, select, textarea");
          if (input) input.setAttribute("aria-invalid", "true");
          shown = shown || el;
          break;
        }
      }
    }
    if (!shown && alertEl) {
      alertEl.textContent = message;
      alertEl.hidden = false;
      shown = alertEl;
    }
    return shown;
  }

  function busy(progressEl, on, text) {
    if (!progressEl) return;
    progressEl.hidden = !on;
    if (text) $('[data-role="text"]', progressEl).textContent = text;
  }

  // ---------------------------------------------------------------- copy buttons
  document.addEventListener("click", async (ev) => {
    const btn = ev.target.closest("[data-copy]");
    if (!btn) return;
    const field = document.getElementById(btn.dataset.copy);
    if (!field) return;
    try {
      await navigator.clipboard.writeText(field.value);
    } catch (_) {
      field.select();
      document.execCommand("copy");
    }
    toast("Copied");
  });

  // ---------------------------------------------------------------- target chooser (agent XOR flow)
  function targetChooser(root) {
    const radios = $$('input[name="target"]', root);
    const sync = () => {
      const chosen = (radios.find((r) => r.checked) || {}).value || "agent";
      $$("[data-target-kind]", root).forEach((box) => {
        const on = box.dataset.targetKind === chosen;
        box.hidden = !on;
        $("select", box).disabled = !on;      // the other one is never submitted
      });
    };
    radios.forEach((r) => r.addEventListener("change", sync));
    sync();
    return () => {
      const chosen = (radios.find((r) => r.checked) || {}).value || "agent";
      const sel = $("#" + chosen + "_id", root);
      const value = sel && !sel.disabled ? sel.value : "";
      return chosen === "agent" ? { agent_id: value || null, flow_id: null }
                                : { flow_id: value || null, agent_id: null };
    };
  }

  function origins(textarea) {
    return textarea.value.split(/[\n,]+/).map((s) => s.trim()).filter(Boolean);
  }

  /* Fill `list` with one radio per number the provider says the account owns. */
  async function loadNumbers(channel, list, err, progress, providerTitle) {
    list.textContent = "";
    err.hidden = true;
    busy(progress, true, "Fetching the numbers from " + providerTitle + "…");
    const r = await api("GET", "/channels/" + channel.id + "/numbers");
    busy(progress, false);
    if (!r.ok) { err.textContent = r.data.message; err.hidden = false; return false; }
    if (!r.data.items.length) {
      err.textContent = "This account owns no numbers. Buy one at the provider, then come back.";
      err.hidden = false;
      return false;
    }
    r.data.items.forEach((n, i) => {
      const label = document.createElement("label");
      label.className = "choice";
      const input = document.createElement("input");
      input.type = "radio"; input.name = "number"; input.value = n.number;
      if (i === 0 || n.number === channel.phone_number) input.checked = true;
      const caps = Object.keys(n.capabilities || {}).filter((k) => n.capabilities[k]).join(", ");
      const span = document.createElement("span");
      const strong = document.createElement("strong");
      strong.textContent = n.number;
      const small = document.createElement("span");
      small.className = "muted";
      small.textContent = caps || n.provider_id;
      span.append(strong, document.createElement("br"), small);
      label.append(input, span);
      list.append(label);
    });
    const checked = $("input:checked", list);
    if (checked) checked.focus();
    return true;
  }

  // ---------------------------------------------------------------- Add Channel wizard
  function wizard(form) {
    const steps = $$("fieldset[data-step]", form);
    const labels = $$(".steps li");
    const alertEl = $("#wizard-error");
    const st = { step: 1, channel: null, kind: null };
    const getTarget = targetChooser(form);

    function chosen() {
      const r = $('input[name="kind"]:checked', form);
      return { key: r.value, type: r.dataset.type, provider: r.dataset.provider || null, title: r.dataset.title };
    }

    function go(n) {
      st.step = n;
      steps.forEach((fs) => { fs.hidden = Number(fs.dataset.step) !== n; });
      labels.forEach((li, i) => {
        if (i + 1 === n) li.setAttribute("aria-current", "step"); else li.removeAttribute("aria-current");
        li.classList.toggle("done", i + 1 < n);
      });
      alertEl.hidden = true;
      const fs = steps[n - 1];
      fs.insertBefore(alertEl, $(".actions", fs));   // errors show next to the fields they concern
      focusFirst(fs);
    }

    function focusFirst(fs) {
      const first = $$("input:not([type=hidden]):not([disabled]), select:not([disabled]), textarea, button", fs)
        .find((el) => el.offsetParent !== null && (el.type !== "radio" || el.checked));
      if (first) first.focus();
    }

    function prepareStep(n) {
      const c = chosen();
      if (n === 2) {
        $$("[data-creds]", form).forEach((box) => { box.hidden = box.dataset.creds !== c.key; });
      }
      if (n === 3) {
        const web = c.type === "web";
        $('[data-for="web"]', form).hidden = !web;
        $('[data-for="phone"]', form).hidden = web;
        $('[data-role="step3-legend"]', form).textContent = web ? "Where the widget may run" : "Select a number";
      }
    }

    function providerName() { return chosen().title.split(": ")[1]; }

    async function verify() {
      clearErrors(form);
      const c = chosen();
      const box = $('[data-creds="' + c.key + '"]', form);
      const credentials = {};
      let missing = null;
      $$("input", box).forEach((input) => {
        const v = input.value.trim();
        if (v) credentials[input.name] = v;
        else if (input.required && !missing) missing = input;
      });
      if (missing) {
        showError(box, { message: "Required.", field: "$.credentials." + missing.name });
        missing.focus();
        return;
      }
      const btn = $("[data-verify]", form);
      btn.disabled = true;
      busy($("#verify-progress"), true, "Checking the credentials with " + c.title.split(": ")[1] + "…");
      const name = $("#ch-name").value.trim();
      let r;
      if (st.channel && st.kind !== c.key) {
        // The operator went back and chose another provider: drop the channel this wizard made.
        await api("DELETE", "/channels/" + st.channel.id);
        st.channel = null;
      }
      if (st.channel) {
        r = await api("PATCH", "/channels/" + st.channel.id, Object.assign({ credentials }, name ? { name } : {}));
      } else {
        r = await api("POST", "/channels", Object.assign({ type: c.type, provider: c.provider, credentials }, name ? { name } : {}));
      }
      busy($("#verify-progress"), false);
      btn.disabled = false;
      if (!r.ok) {
        const where = showError(box, r.data, alertEl);
        if (where === alertEl) alertEl.focus();
        return;
      }
      st.channel = r.data; st.kind = c.key;
      toast("Credentials accepted by " + c.title.split(": ")[1]);
      prepareStep(3);
      go(3);
      await loadNumbers(st.channel, $("#numbers"), $("#numbers-error"), $("#numbers-progress"), providerName());
    }

    async function save() {
      clearErrors(form);
      const c = chosen();
      const target = getTarget();
      if (!target.agent_id && !target.flow_id) {
        showError(form, { message: "Choose an agent or a flow (create one first if the list is empty).", field: target.flow_id === null ? "$.agent_id" : "$.flow_id" }, alertEl);
        return;
      }
      const btn = $("[data-save]", form);
      btn.disabled = true;
      busy($("#save-progress"), true, c.type === "web" ? "Saving…" : "Saving and configuring the webhook at " + c.title.split(": ")[1] + "…");
      let r;
      if (c.type === "web") {
        const name = $("#ch-name").value.trim();
        r = await api("POST", "/channels", Object.assign({ type: "web", allowed_origins: origins($("#origins")) }, target, name ? { name } : {}));
        if (r.ok) st.channel = r.data;
      } else {
        const number = ($('input[name="number"]:checked', form) || {}).value;
        r = await api("PATCH", "/channels/" + st.channel.id, Object.assign({ phone_number: number }, target));
        if (r.ok) {
          r = await api("POST", "/channels/" + st.channel.id + "/activate");
          // A provider refusal leaves the channel in "error" with the reason: the channel page shows it.
          if (!r.ok && r.data.error === "provider") r = { ok: true };
        }
      }
      busy($("#save-progress"), false);
      btn.disabled = false;
      if (!r.ok) {
        const where = showError(form, r.data, alertEl);
        const fs = where && where.closest("fieldset[data-step]");
        if (fs && Number(fs.dataset.step) !== st.step) { go(Number(fs.dataset.step)); }
        if (where === alertEl) alertEl.focus();
        return;
      }
      location.href = "/console/channels/" + st.channel.id;
    }

    alertEl.tabIndex = -1;
    form.addEventListener("submit", (ev) => ev.preventDefault());
    form.addEventListener("click", async (ev) => {
      const t = ev.target.closest("button");
      if (!t) return;
      if (t.dataset.next) {
        const n = Number(t.dataset.next);
        if (n === 1) {
          const c = chosen();
          const next = c.type === "web" ? 3 : 2;
          prepareStep(next);
          go(next);
        } else if (n === 3) {
          const c = chosen();
          if (c.type !== "web" && !$('input[name="number"]:checked', form)) {
            const err = $("#numbers-error");
            err.textContent = "Choose a number.";
            err.hidden = false;
            return;
          }
          go(4);
        }
      } else if (t.dataset.back) {
        const n = Number(t.dataset.back);
        const prev = n === 3 && chosen().type === "web" ? 1 : n - 1;
        prepareStep(prev);
        go(prev);
      } else if ("verify" in t.dataset) {
        await verify();
      } else if ("save" in t.dataset) {
        await save();
      }
    });
    // Enter in a credential field verifies (keyboard users never need the mouse).
    form.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && ev.target.matches("input[type=text], input[type=password]")) {
        ev.preventDefault();
        const btn = $("fieldset:not([hidden]) .actions .primary", form);
        if (btn) btn.click();
      }
    });
  }

  // ---------------------------------------------------------------- channel page
  function channelPage(root) {
    const id = root.dataset.channelId;
    const alertEl = $("#action-error");
    const progress = $("#action-progress");

    function render(ch) {
      const badge = $('[data-role="badge"]', root);
      badge.className = "badge badge-" + ch.status;
      badge.textContent = STATUS[ch.status];
      $('[data-role="detail"]', root).textContent = humanize(ch.status_detail) || STATUS[ch.status];
      $('[data-role="next"]', root).textContent = ch.status === "active"
        ? "Active: calls and messages reach " + (ch.agent_id ? "the agent." : "the flow.")
        : ch.type === "whatsapp" && ch.status === "setup"
          ? "Connect Meta: paste the Callback URL and Verify token below into Meta's dashboard. The channel turns Active when Meta verifies the URL."
          : (humanize(ch.status_detail) || STATUS[ch.status]);
      $('[data-action="activate"]', root).hidden = ch.status === "active";
      $('[data-action="deactivate"]', root).hidden = ch.status === "inactive";
      $('[data-role="updated"]', root).textContent = ch.updated_at;
      $('[data-role="name"]', root).textContent = ch.name;
    }

    async function refresh() {
      const r = await api("GET", "/channels/" + id);
      if (r.ok) render(r.data);
    }

    const words = { activate: "Activating…", deactivate: "Deactivating…", verify: "Checking the credentials…" };
    root.addEventListener("click", async (ev) => {
      const btn = ev.target.closest("[data-action]");
      if (!btn) return;
      clearErrors(root);
      btn.disabled = true;
      busy(progress, true, words[btn.dataset.action]);
      const r = await api("POST", "/channels/" + id + "/" + btn.dataset.action);
      busy(progress, false);
      btn.disabled = false;
      if (r.ok) {
        render(r.data);
        toast(btn.textContent.trim() + ": done");
      } else {
        alertEl.textContent = r.data.message || "Failed.";
        alertEl.hidden = false;
        await refresh();          // a failed activate/verify moves the channel to "error"
      }
    });

    // WhatsApp turns Active when Meta's verification request arrives: watch for it.
    if (root.dataset.type === "whatsapp") {
      let polls = 0;
      const timer = setInterval(async () => {
        polls += 1;
        const r = await api("GET", "/channels/" + id);
        if (r.ok) render(r.data);
        if ((r.ok && r.data.status !== "setup") || polls > 600) clearInterval(timer);
      }, 3000);
    }

    const pick = $("[data-pick-number]", root);
    if (pick) {
      const picker = $("#number-picker");
      pick.addEventListener("click", async () => {
        picker.hidden = false;
        pick.hidden = true;
        await loadNumbers({ id, phone_number: $('[data-role="number"]', root).textContent }, $("#numbers"),
                          $("#numbers-error"), $("#numbers-progress"), root.dataset.providerTitle);
      });
      $("[data-use-number]", root).addEventListener("click", async () => {
        clearErrors(picker);
        const chosenNumber = ($('#numbers input[name="number"]:checked') || {}).value;
        if (!chosenNumber) return;
        const r = await api("PATCH", "/channels/" + id, { phone_number: chosenNumber });
        if (!r.ok) { showError(picker, r.data, $("#numbers-error")); return; }
        render(r.data);
        $('[data-role="number"]', root).textContent = r.data.phone_number;
        picker.hidden = true;
        pick.hidden = false;
        pick.textContent = "Choose another number";
        pick.focus();
        toast("Number saved");
      });
    }

    const credsForm = $("#creds-form");
    if (credsForm) {
      credsForm.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        clearErrors(credsForm);
        const credentials = {};
        $$("input", credsForm).forEach((input) => { if (input.value.trim()) credentials[input.name] = input.value.trim(); });
        if (!Object.keys(credentials).length) {
          showError(credsForm, { message: "Nothing to update: fill in the fields that changed." }, $("#creds-error"));
          return;
        }
        const btn = $("button[type=submit]", credsForm);
        btn.disabled = true;
        const r = await api("PATCH", "/channels/" + id, { credentials });
        btn.disabled = false;
        if (!r.ok) { showError(credsForm, r.data, $("#creds-error")); return; }
        $$("input", credsForm).forEach((input) => { input.value = ""; });
        render(r.data);
        toast("Credentials verified and saved");
      });
    }

    const dialog = $("#delete-dialog");
    $("[data-delete]", root).addEventListener("click", () => dialog.showModal());
    dialog.addEventListener("close", async () => {
      if (dialog.returnValue !== "delete") return;
      busy(progress, true, "Deleting…");
      const r = await api("DELETE", "/channels/" + id);
      busy(progress, false);
      if (r.ok) {
        // The API reports whether the provider's webhook went too: say it on the next page.
        const name = $('[data-role="name"]', root).textContent;
        const report = r.data.webhook_removed === true ? " The webhook was removed at the provider."
          : r.data.webhook_removed === false
            ? " The webhook could not be removed at the provider (" + (r.data.detail || "no answer") + "): remove it there by hand."
            : "";
        sessionStorage.setItem("console-flash", "Deleted " + name + "." + report);
        location.href = "/console/channels";
      } else {
        alertEl.textContent = r.data.message || "Delete failed.";
        alertEl.hidden = false;
      }
    });

    const targetForm = $("#target-form");
    if (targetForm) {
      const getTarget = targetChooser(targetForm);
      targetForm.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        clearErrors(targetForm);
        const r = await api("PATCH", "/channels/" + id, getTarget());
        if (r.ok) {
          render(r.data);
          const sel = $("select:not([disabled])", targetForm);
          const kind = r.data.agent_id ? "agent" : "flow";
          const link = document.createElement("a");
          link.href = "/console/" + kind + "s/" + (r.data.agent_id || r.data.flow_id);
          link.textContent = (kind === "agent" ? "Agent: " : "Flow: ") + sel.options[sel.selectedIndex].text;
          $('[data-role="target"]', root).replaceChildren(link);
          toast("Target saved");
        }
        else showError(targetForm, r.data, alertEl);
      });
    }

    const originsForm = $("#origins-form");
    if (originsForm) {
      originsForm.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        clearErrors(originsForm);
        const r = await api("PATCH", "/channels/" + id, { allowed_origins: origins($("#origins")) });
        if (r.ok) { render(r.data); toast("Origins saved"); }
        else showError(originsForm, r.data, alertEl);
      });
    }

    const sessionBtn = $("[data-session-url]", root);
    if (sessionBtn) {
      sessionBtn.addEventListener("click", async () => {
        clearErrors(root);
        const r = await api("POST", "/channels/" + id + "/session-url", {});
        if (!r.ok) { alertEl.textContent = r.data.message; alertEl.hidden = false; alertEl.scrollIntoView(); return; }
        $("#session-url").value = r.data.url;
        $('[data-role="expires"]', root).textContent = r.data.expires_at;
        $("#session-url-box").hidden = false;
        $("#session-url").focus();
      });
    }
  }

  // ---------------------------------------------------------------- agents
  function agentForm(form) {
    const id = form.dataset.agentId;
    const kind = $("#kind", form);
    const alertEl = $("#form-error");
    const original = { url: $("#url", form).value, kind: kind.value };
    const sync = () => $$("[data-kinds]", form).forEach((el) => {
      el.hidden = !el.dataset.kinds.split(" ").includes(kind.value);
    });
    kind.addEventListener("change", sync);
    sync();
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      clearErrors(form);
      const body = { name: $("#name", form).value.trim(), kind: kind.value };
      const url = $("#url", form).value.trim();
      const headerText = $("#headers", form).value.trim();
      const headers = {};
      for (const line of headerText ? headerText.split("\n") : []) {
        const at = line.indexOf(":");
        if (at < 1) { showError(form, { message: 'Write each header as "Name: value".', field: "$.config.headers" }); return; }
        headers[line.slice(0, at).trim()] = line.slice(at + 1).trim();
      }
      const unchanged = id && kind.value === original.kind && url === original.url && !headerText;
      if (kind.value === "echo") body.config = {};
      else if (!unchanged) body.config = Object.assign({ url }, headerText ? { headers } : {});
      const r = id ? await api("PATCH", "/agents/" + id, body) : await api("POST", "/agents", body);
      if (!r.ok) { showError(form, r.data, alertEl); return; }
      if (id) { toast("Agent saved"); $("h1").textContent = r.data.name; }
      else location.href = "/console/agents";
    });
  }

  // ---------------------------------------------------------------- flows
  function flowForm(form) {
    const id = form.dataset.flowId;
    const editor = $("#definition", form);
    const list = $("#node-list");
    const status = $("#check-status");
    const alertEl = $("#form-error");

    function parse() {
      try {
        return { ok: true, value: JSON.parse(editor.value) };
      } catch (err) {
        return { ok: false, message: "Not valid JSON: " + err.message };
      }
    }

    function jumpTo(node) {
      const at = editor.value.indexOf('"' + node + '"');
      if (at < 0) return;
      editor.focus();
      editor.setSelectionRange(at, at + node.length + 2);
    }

    function renderNodes(definition, errors) {
      list.textContent = "";
      const nodes = definition && typeof definition.nodes === "object" && definition.nodes ? definition.nodes : {};
      const byNode = {};
      (errors || []).forEach((e) => { (byNode[e.node || ""] = byNode[e.node || ""] || []).push(e); });
      const ids = Array.isArray(nodes) ? [] : Object.keys(nodes);
      const entries = [["", "flow (top level)"]].concat(ids.map((n) => [n, n + " · " + ((nodes[n] || {}).type || "?")]));
      entries.forEach(([node, label]) => {
        const errs = byNode[node] || [];
        if (!node && !errs.length) return;
        const li = document.createElement("li");
        li.dataset.node = node;
        if (errs.length) li.className = "has-errors";
        const btn = document.createElement("button");
        btn.type = "button"; btn.className = "link"; btn.textContent = label;
        if (node) btn.addEventListener("click", () => jumpTo(node));
        li.append(btn);
        if (errs.length) {
          const ul = document.createElement("ul");
          errs.forEach((e) => {
            const item = document.createElement("li");
            item.textContent = (e.path ? e.path + ": " : "") + e.message;
            ul.append(item);
          });
          li.append(ul);
        }
        list.append(li);
      });
      Object.keys(byNode).filter((n) => n && !ids.includes(n)).forEach((n) => {
        const li = document.createElement("li");
        li.className = "has-errors";
        li.textContent = n + ": " + byNode[n].map((e) => e.message).join("; ");
        list.append(li);
      });
    }

    async function check() {
      clearErrors(form);
      const p = parse();
      if (!p.ok) { showError(form, { message: p.message, field: "$.definition" }); renderNodes(null, []); return false; }
      status.textContent = "Checking…";
      const r = await post("/console/flows/check", { definition: p.value });
      renderNodes(p.value, r.data.errors || []);
      const n = (r.data.errors || []).length;
      status.textContent = r.data.ok ? "No problems found." : n + " problem" + (n === 1 ? "" : "s") + " found (listed at the node).";
      return !!r.data.ok;
    }

    $("[data-check]", form).addEventListener("click", check);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      clearErrors(form);
      const p = parse();
      if (!p.ok) { showError(form, { message: p.message, field: "$.definition" }); return; }
      const body = { name: $("#name", form).value.trim(), definition: p.value };
      const r = id ? await api("PATCH", "/flows/" + id, body) : await api("POST", "/flows", body);
      if (!r.ok) {
        showError(form, r.data, alertEl);
        // The API lists every problem of a definition as {node, path, message}: show them at the node.
        if (r.data.errors) {
          renderNodes(p.value, r.data.errors.map((e) => Object.assign({}, e, { path: (e.path || "").replace(/^\$\.definition/, "$") })));
          status.textContent = r.data.errors.length + " problem" + (r.data.errors.length === 1 ? "" : "s") + " found (listed at the node).";
        } else {
          await check();
        }
        return;
      }
      if (!id) { location.href = "/console/flows/" + r.data.id; return; }
      toast("Flow saved");
      $("h1").textContent = r.data.name;
      await check();
    });
    const p = parse();
    renderNodes(p.ok ? p.value : null, []);

    const sim = $("#sim-form");
    if (sim) {
      sim.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const out = $("#sim-transcript");
        const err = $("#sim-inputs-error");
        err.hidden = true;
        let inputs;
        try { inputs = JSON.parse($("#sim-inputs").value); } catch (e) { err.textContent = "Not valid JSON: " + e.message; err.hidden = false; return; }
        const r = await api("POST", "/flows/" + sim.dataset.flowId + "/simulate",
                            { inputs, channel_type: $("#sim-channel").value });
        out.textContent = "";
        if (!r.ok) { err.textContent = r.data.message; err.hidden = false; return; }
        (r.data.transcript || []).forEach((entry) => {
          const li = document.createElement("li");
          if (entry.input) {
            li.textContent = "caller: " + JSON.stringify(entry.input);
          } else {
            const a = entry.action || {};
            const words = a.text || a.message || a.agent_id || a.number || a.url || "";
            li.textContent = (a.type || "action") + (words ? ": " + words : "");
          }
          out.append(li);
        });
        $("#sim-result").textContent = r.data.done
          ? "Ended: " + (r.data.end_reason || "done") + "."
          : "Waiting at node " + (r.data.node || "?") + ".";
      });
    }
  }

  // ---------------------------------------------------------------- delete an agent or a flow
  function deleteResource(box) {
    const dialog = $("#delete-dialog", box);
    const alertEl = $("#delete-error", box);
    $("[data-delete-open]", box).addEventListener("click", () => dialog.showModal());
    dialog.addEventListener("close", async () => {
      if (dialog.returnValue !== "delete") return;
      const r = await api("DELETE", box.dataset.deleteResource);
      if (r.ok) { location.href = box.dataset.back; return; }
      alertEl.textContent = r.data.message || "Delete failed.";   // 409 names the channels
      (r.data.channels || []).forEach((cid, i) => {
        const link = document.createElement("a");
        link.href = "/console/channels/" + cid;
        link.textContent = "open " + cid;
        alertEl.append(i ? ", " : " — ", link);
      });
      alertEl.hidden = false;
      alertEl.focus();
    });
  }

  function flash() {
    const text = sessionStorage.getItem("console-flash");
    if (!text) return;
    sessionStorage.removeItem("console-flash");
    const box = document.createElement("p");
    box.className = "alert ok";
    box.setAttribute("role", "status");
    box.id = "flash";
    box.textContent = text;
    $("main").prepend(box);
  }

  document.addEventListener("DOMContentLoaded", () => {
    flash();
    const d = $("[data-delete-resource]"); if (d) deleteResource(d);
    const w = $("#wizard"); if (w) wizard(w);
    const c = $("#channel-page"); if (c) channelPage(c);
    const a = $("#agent-form"); if (a) agentForm(a);
    const f = $("#flow-form"); if (f) flowForm(f);
  });
})();
