// Kefu agent console: polls the handoff queue and the open conversation, claims, replies and
// hands back through /webhooks/agent/api with the agent's own bearer token (kept in
// sessionStorage only). Who is signed in is the server's answer to api/me, never typed in.
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

  function queueItem(h) {
    var li = el("li");
    var button = el("button", "queue__item" + (h.handoff_id === current ? " is-current" : ""));
    button.type = "button";
    button.dataset.handoff = h.handoff_id;
    button.appendChild(el("strong", null, h.ticket_number));
    button.appendChild(el("span", "tag tag--" + h.language, h.language === "zh" ? "中文" : "EN"));
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

  async function start() {
    try { me = (await call("GET", "/me")).agent; }
    catch (e) { refused(e); return; }
    $("login").hidden = true;
    $("whoami").hidden = false;
    $("whoami-name").textContent = "Signed in as " + me;
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
  }

  $("login").addEventListener("submit", function (event) {
    event.preventDefault();
    sessionStorage.setItem("kefu.agentToken", $("agent-token").value.trim());
    $("agent-token").value = "";
    start();
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
