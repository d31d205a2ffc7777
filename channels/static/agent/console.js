// Kefu agent console: polls the handoff queue and the open conversation, claims, replies and
// hands back through /webhooks/agent/api with the agent's own bearer token (kept in
// sessionStorage only). Who is signed in is the server's answer to api/me, never typed in.
// The Dashboard tab shows api/dashboard: the numbers of `python -m analytics report`, and
// below them api/outreach: the late orders customers already asked about (whom to contact).
(function () {
  "use strict";

  var API = "/webhooks/agent/api";
  var POLL_MS = 2000;
  var current = null;   // handoff id shown
  var timer = null;
  var me = null;        // the signed-in agent's name, from api/me

  function $(id) { return document.getElementById(id); }
  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function notice(text) { $("notice").textContent = text || ""; $("notice").hidden = !text; }

  function token() { return sessionStorage.getItem("kefu.agentToken"); }

  async function call(method, path, body) {
    var response = await fetch(API + path, {
      method: method,
      headers: Object.assign(
        { Authorization: "Bearer " + token() },
        body ? { "Content-Type": "application/json" } : {}),
      body: body ? JSON.stringify(body) : undefined
    });
    var data = await response.json().catch(function () { return {}; });
    if (!response.ok) {
      var error = new Error(data.message || response.statusText);
      error.status = response.status;
      throw error;
    }
    return data;
  }

  // The server flags a conversation at the contract's HIGH_COMPLAINT_RISK (at_risk) and sorts
  // it first within its priority; the badge tells the agent why it jumped the queue.
  function riskBadge(risk) {
    var score = risk === null || risk === undefined ? "" : " " + Number(risk).toFixed(2);
    var badge = el("span", "tag tag--risk", "at risk" + score);
    badge.title = "Complaint risk" + score + ": likely to complain or rate 1-2";
    return badge;
  }

  function queueItem(h) {
    var li = el("li");
    var button = el("button", "queue__item" + (h.handoff_id === current ? " is-current" : ""));
    button.type = "button";
    button.dataset.handoff = h.handoff_id;
    button.appendChild(el("strong", null, h.ticket_number));
    button.appendChild(el("span", "tag tag--" + h.language, h.language === "zh" ? "中文" : "EN"));
    if (h.at_risk) button.appendChild(riskBadge(h.risk));
    button.appendChild(el("span", "queue__reason", h.reason));
    if (h.assigned_to) button.appendChild(el("span", "queue__agent", "→ " + h.assigned_to));
    button.addEventListener("click", function () { open(h.handoff_id); });
    li.appendChild(button);
    return li;
  }

  async function refreshQueue() {
    var data = await call("GET", "/queue");
    $("waiting").replaceChildren.apply($("waiting"), data.waiting.map(queueItem));
    $("assigned").replaceChildren.apply($("assigned"), data.assigned.map(queueItem));
    if (!data.waiting.length) $("waiting").appendChild(el("li", "empty", "Nobody is waiting."));
  }

  function render(data) {
    var h = data.handoff;
    $("conversation").hidden = false;
    $("conv-title").textContent = "Ticket " + h.ticket_number;
    $("conv-meta").textContent = [h.reason, "status: " + h.status,
      h.assigned_to ? "agent: " + h.assigned_to : "", "conversation " + h.conversation_id]
      .filter(Boolean).join(" · ");
    var s = data.sentiment;
    $("sentiment").textContent = "Sentiment: " + s.label + " (latest " + s.latest.toFixed(2) +
      ", peak " + s.peak.toFixed(2) + ")";
    $("sentiment").className = "sentiment sentiment--" + s.label;
    var log = $("transcript");
    var atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    log.replaceChildren.apply(log, data.messages.map(function (m) {
      var li = el("li", "line line--" + m.role);
      var who = m.role === "user" ? "Customer" : m.role === "agent" ? m.agent : "Kefu";
      li.appendChild(el("span", "line__who", who));
      li.appendChild(el("span", "line__text", m.text || (m.custom ? "[" + m.custom.type + "]" : "")));
      if (m.role === "user" && m.mood && m.mood !== "calm") {
        li.appendChild(el("span", "line__mood", "frustration " + m.frustration.toFixed(2)));
      }
      return li;
    }));
    if (atBottom) log.scrollTop = log.scrollHeight;
    var mine = h.status === "assigned" && h.assigned_to === me;
    $("claim").hidden = h.status !== "waiting";
    $("handback").hidden = !mine;
    $("reply-form").hidden = !mine;

    var customer = data.customer;
    $("customer").hidden = false;
    if (!customer) {
      $("customer-id").textContent = "Not verified in this conversation.";
      $("orders").replaceChildren();
      $("tickets").replaceChildren();
      return;
    }
    $("customer-id").textContent = "Customer #" + customer.customer_id;
    $("orders").replaceChildren.apply($("orders"), customer.orders.map(function (o) {
      return el("li", null, o.number + " · " + o.status + " · " + (o.total_cents / 100).toFixed(2) +
        " " + o.currency + " · " + String(o.placed_at).slice(0, 10));
    }));
    $("tickets").replaceChildren.apply($("tickets"), customer.open_tickets.map(function (tk) {
      return el("li", null, tk.ticket_number + " · " + tk.category + " · " + tk.severity + " · " + tk.status);
    }));
  }

  async function open(handoffId) {
    current = handoffId;
    try { render(await call("GET", "/handoffs/" + handoffId)); notice(""); }
    catch (e) { notice(e.message); }
  }

  async function poll() {
    try {
      await refreshQueue();
      if (current !== null) render(await call("GET", "/handoffs/" + current));
      notice("");
    } catch (e) {
      refused(e);
    }
  }

  function refused(e) {
    if (e.status === 401) { stop(); notice("The agent token was refused."); }
    else if (e.status === 429) { stop(); notice(e.message); }
    else notice(e.message);
  }

  // ---- the Dashboard tab ----------------------------------------------------------------

  function pct(v) { return v === null || v === undefined ? "—" : (v * 100).toFixed(1) + "%"; }
  function num(v, digits) {
    return v === null || v === undefined ? "—" : digits ? Number(v).toFixed(digits) : String(v);
  }
  function secs(v) { return v === null || v === undefined ? "—" : Math.round(v) + " s"; }

  function card(label, value, detail) {
    var node = el("div", "card");
    node.appendChild(el("span", "card__value", value));
    node.appendChild(el("span", "card__label", label));
    if (detail) node.appendChild(el("div", "card__label", detail));
    return node;
  }

  function table(id, head, rows, emptyText) {
    var t = $(id);
    var caption = t.querySelector("caption");  // the table's accessible name stays
    var thead = el("thead");
    var tr = el("tr");
    head.forEach(function (h) { var th = el("th", null, h); th.scope = "col"; tr.appendChild(th); });
    thead.appendChild(tr);
    var tbody = el("tbody");
    rows.forEach(function (cells) {
      var row = el("tr");
      cells.forEach(function (c) { row.appendChild(el("td", null, c)); });
      tbody.appendChild(row);
    });
    if (!rows.length) {
      var empty = el("tr");
      var td = el("td", "empty", emptyText || "Nothing in this window.");
      td.colSpan = head.length;
      empty.appendChild(td);
      tbody.appendChild(empty);
    }
    t.replaceChildren.apply(t, [caption, thead, tbody].filter(Boolean));
  }

  function renderDashboard(d) {
    var c = d.containment, h = d.handoffs, f = d.fallbacks, s = d.csat, w = d.agent_wait;
    var day = function (ts) { return new Date(ts * 1000).toISOString().slice(0, 16).replace("T", " "); };
    $("dash-window").textContent = day(d.window.since) + " – " + day(d.window.until) + " UTC";
    $("dash-cards").replaceChildren(
      card("Conversations", num(c.conversations)),
      card("Containment", pct(c.rate), c.contained + " without a person"),
      card("Resolved by Kefu", pct(c.resolved_rate), c.resolved + " with a task done"),
      card("Handoff rate", pct(h.rate), h.handoffs + " handoffs"),
      card("Fallback rate", pct(f.rate), f.fallbacks + " of " + f.user_messages + " messages"),
      card("CSAT", num(s.mean, 2), s.answers + " answers · " + pct(s.satisfied_share) + " 4–5"),
      card("Median agent wait", secs(w.median_s), w.answered + " answered · max " + secs(w.max_s))
    );
    table("dash-languages", ["Language", "Conversations", "Containment", "Handoffs", "Fallbacks",
      "CSAT", "Median wait"], Object.keys(d.languages).map(function (lang) {
      var l = d.languages[lang];
      return [lang === "zh" ? "中文 (zh)" : lang === "en" ? "English (en)" : lang,
        num(l.containment.conversations), pct(l.containment.rate), pct(l.handoffs.rate),
        pct(l.fallbacks.rate), num(l.csat.mean, 2), secs(l.agent_wait.median_s)];
    }));
    table("dash-tasks", ["Flow", "Started", "Completed", "Rate"],
      Object.keys(d.tasks).filter(function (flow) { return d.tasks[flow].started; })
        .map(function (flow) {
          var t = d.tasks[flow];
          return [flow, num(t.started), num(t.completed), pct(t.rate)];
        }));
    table("dash-reasons", ["Reason", "Handoffs"],
      Object.keys(h.reasons).filter(function (r) { return h.reasons[r]; })
        .map(function (r) { return [r, num(h.reasons[r])]; }));
    table("dash-agents", ["Agent", "Conversations", "CSAT", "Answers", "Median wait"],
      (d.agents || []).map(function (a) {
        return [a.agent, num(a.conversations), num(a.csat_mean, 2), num(a.csat_answers),
          secs(a.median_wait_s)];
      }));
    table("dash-intents", ["Intent", "Messages", "Fallbacks", "Rephrased", "Handed off", "Rate"],
      d.intents_needing_data.map(function (i) {
        return [i.intent, num(i.messages), num(i.fallbacks), num(i.rephrased), num(i.handed_off),
          pct(i.rate)];
      }));
  }

  function dashStatus(text) { $("dash-status").textContent = text || ""; $("dash-status").hidden = !text; }

  function when(iso) {
    return iso ? new Date(iso).toISOString().slice(0, 16).replace("T", " ") + " UTC" : "—";
  }

  // Not windowed: an order is late today, whenever its customers wrote.
  async function loadOutreach() {
    var status = $("outreach-status");
    try {
      var data = await call("GET", "/outreach");
      table("outreach-orders", ["Order", "Days late", "Carrier", "Contacts", "Last contact"],
        data.orders.map(function (o) {
          return [o.number, num(o.days_late), o.carrier || "—", num(o.contacts),
            when(o.last_contact_at)];
        }), "No late orders customers have asked about.");
      $("outreach-orders").hidden = false;
      status.hidden = true;
    } catch (e) {
      if (e.status === 401 || e.status === 429) { refused(e); return; }
      $("outreach-orders").hidden = true;
      status.textContent = e.status === 503 ? e.message
        : "The outreach list could not be loaded: " + e.message;
      status.hidden = false;
    }
    $("outreach").hidden = false;
  }

  async function loadDashboard() {
    loadOutreach();
    dashStatus("Loading…");
    try {
      var data = await call("GET", "/dashboard?since=" + encodeURIComponent($("dash-since").value));
      renderDashboard(data);
      $("dash-body").hidden = false;
      dashStatus("");
    } catch (e) {
      $("dash-body").hidden = true;
      if (e.status === 401 || e.status === 429) { refused(e); return; }
      dashStatus(e.status === 503
        ? "The service numbers are unavailable: " + e.message
        : "The dashboard could not be loaded: " + e.message);
    }
  }

  function showTab(name) {
    var dashboard = name === "dashboard";
    $("tab-dashboard").setAttribute("aria-selected", String(dashboard));
    $("tab-conversations").setAttribute("aria-selected", String(!dashboard));
    $("tab-dashboard").tabIndex = dashboard ? 0 : -1;
    $("tab-conversations").tabIndex = dashboard ? -1 : 0;
    $("panel-dashboard").hidden = !dashboard;
    $("panel-conversations").hidden = dashboard;
    if (dashboard) loadDashboard();
  }

  async function start() {
    try { me = (await call("GET", "/me")).agent; }
    catch (e) { refused(e); return; }
    $("login").hidden = true;
    $("whoami").hidden = false;
    $("whoami-name").textContent = "Signed in as " + me;
    $("tabs").hidden = false;
    notice("");
    poll();
    timer = setInterval(poll, POLL_MS);
  }
  function stop() {
    clearInterval(timer);
    timer = null;
    me = null;
    current = null;
    sessionStorage.removeItem("kefu.agentToken");
    $("login").hidden = false;
    $("whoami").hidden = true;
    $("conversation").hidden = true;
    $("customer").hidden = true;
    $("tabs").hidden = true;
    $("dash-body").hidden = true;
    $("outreach").hidden = true;
    dashStatus("");
    showTab("conversations");
  }

  $("login").addEventListener("submit", function (event) {
    event.preventDefault();
    sessionStorage.setItem("kefu.agentToken", $("agent-token").value.trim());
    $("agent-token").value = "";
    start();
  });
  $("tab-conversations").addEventListener("click", function () { showTab("conversations"); });
  $("tab-dashboard").addEventListener("click", function () { showTab("dashboard"); });
  $("tabs").addEventListener("keydown", function (event) {
    if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
    var next = $("tab-dashboard").getAttribute("aria-selected") === "true" ? "conversations" : "dashboard";
    showTab(next);
    $(next === "dashboard" ? "tab-dashboard" : "tab-conversations").focus();
  });
  $("dash-form").addEventListener("submit", function (event) {
    event.preventDefault();
    loadDashboard();
  });
  $("sign-out").addEventListener("click", function () { stop(); notice(""); });
  $("claim").addEventListener("click", async function () {
    try { await call("POST", "/handoffs/" + current + "/claim"); await poll(); }
    catch (e) { notice(e.message); }
  });
  $("handback").addEventListener("click", async function () {
    try { await call("POST", "/handoffs/" + current + "/handback"); await poll(); }
    catch (e) { notice(e.message); }
  });
  $("reply-form").addEventListener("submit", async function (event) {
    event.preventDefault();
    var text = $("reply").value.trim();
    if (!text) return;
    try {
      await call("POST", "/handoffs/" + current + "/reply", { text: text });
      $("reply").value = "";
      await poll();
    } catch (e) { notice(e.message); }
  });

  if (token()) start();
})();
