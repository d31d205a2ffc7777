// Kefu web chat: socket.io with Rasa's events (session_request/session_confirm,
// user_uttered/bot_uttered). The session id lives in localStorage with the signed-in customer
// it belongs to, so a reload or a server restart continues the same conversation (the server
// sends its history on every (re)connect), while another customer signing in on this browser
// starts a new one. "New conversation" drops the stored session id. The server has the last
// word: it never resumes a verified conversation for someone who cannot prove to be that
// customer.
(function () {
  "use strict";

  var STRINGS = {
    en: {
      title: "Kefu customer service", anonymous: "Chatting as a guest",
      verified: "Signed in as {name}", typing: "Kefu is typing…", label: "Your message",
      placeholder: "Type your message…", send: "Send", connecting: "Connecting…",
      reconnecting: "Connection lost. Reconnecting…", agent: "{name} (customer service)",
      you: "You", bot: "Kefu", expired: "Your sign-in expired; you are chatting as a guest.",
      newConversation: "New conversation",
      invalid: "We could not confirm your sign-in; you are chatting as a guest.",
      product: "Product", order: "Order", inStock: "in stock", outOfStock: "out of stock",
      restock: "back {date}", carrier: "Carrier", tracking: "Tracking number",
      lastEvent: "Latest", eta: "Expected", status: "Status",
      st_placed: "Placed", st_paid: "Paid", st_packed: "Packed", st_shipped: "Shipped",
      st_out_for_delivery: "Out for delivery", st_delivered: "Delivered",
      st_cancelled: "Cancelled", st_returned: "Returned"
    },
    zh: {
      title: "客服 Kefu", anonymous: "访客身份聊天", verified: "已登录：{name}",
      typing: "客服正在输入…", label: "您的消息", placeholder: "请输入您的问题…", send: "发送",
      connecting: "正在连接…", reconnecting: "连接已断开，正在重新连接…",
      agent: "{name}（人工客服）", you: "您", bot: "客服", expired: "登录已过期，您将以访客身份聊天。",
      newConversation: "新对话",
      invalid: "无法确认您的登录信息，您将以访客身份聊天。", product: "商品", order: "订单",
      inStock: "有货", outOfStock: "缺货", restock: "预计 {date} 到货", carrier: "承运商",
      tracking: "运单号", lastEvent: "最新动态", eta: "预计送达", status: "状态",
      st_placed: "已下单", st_paid: "已付款", st_packed: "已打包", st_shipped: "已发货",
      st_out_for_delivery: "派送中", st_delivered: "已签收", st_cancelled: "已取消",
      st_returned: "已退货"
    }
  };
  var SESSION_KEY = "kefu.session";
  var LANG_KEY = "kefu.lang";
  var TOKEN_KEY = "kefu.customerToken";
  // This tab's proof that it had its conversation (sessionStorage: gone with the tab).
  var RESUME_KEY = "kefu.resume";
  var HAN = /[\u3400-\u9fff]/;
  var LATIN = /[A-Za-z]{2,}/;

  var log = document.getElementById("messages");
  var form = document.getElementById("composer");
  var input = document.getElementById("input");
  var typing = document.getElementById("typing");
  var statusLine = document.getElementById("connection");
  var errorLine = document.getElementById("error");
  var identityLine = document.getElementById("identity");
  var lang = localStorage.getItem(LANG_KEY) || (navigator.language || "en").slice(0, 2);
  if (!STRINGS[lang]) lang = "en";
  var identity = { verified: false };
  var typingTimer = null;
  var freshSession = false;

  // A shop's site opens the chat as /webhooks/webchat/#token=<JWT>; the fragment never reaches
  // server logs, and is removed from the address bar once read.
  var hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get("token")) {
    sessionStorage.setItem(TOKEN_KEY, hash.get("token"));
    history.replaceState(null, "", location.pathname + location.search);
  }

  // Who the token speaks for (its "sub"); only to keep sessions apart per customer on this
  // browser: the server checks the token itself.
  function tokenSubject() {
    var token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) return null;
    try {
      var part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      var sub = JSON.parse(atob(part)).sub;
      return sub === undefined || sub === null ? null : String(sub);
    } catch (e) {
      return null;
    }
  }

  function storedSession() {
    var raw = localStorage.getItem(SESSION_KEY);
    if (!raw) return null;
    try {
      var stored = JSON.parse(raw);
      if (stored && typeof stored.id === "string") return stored;
    } catch (e) { /* an id stored by an older page: it belonged to nobody in particular */ }
    return { id: raw, subject: null };
  }

  function storeSession(id, subject) {
    localStorage.setItem(SESSION_KEY, JSON.stringify({ id: id, subject: subject }));
  }

  // A session stored for another customer (or for a guest, now that someone signed in) is
  // not this customer's conversation.
  var stored = storedSession();
  if (stored && stored.subject !== tokenSubject()) localStorage.removeItem(SESSION_KEY);

  // This tab's conversation (another tab may store another customer's session meanwhile).
  var currentId = null;

  function sessionId() {
    if (currentId) return currentId;
    var current = storedSession();
    return current ? current.id : null;
  }

  function t(key, params) {
    var text = (STRINGS[lang] && STRINGS[lang][key]) || STRINGS.en[key] || key;
    Object.keys(params || {}).forEach(function (name) {
      text = text.replace("{" + name + "}", params[name]);
    });
    return text;
  }

  function applyLanguage(next) {
    lang = next;
    localStorage.setItem(LANG_KEY, lang);
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    document.querySelectorAll("[data-i18n]").forEach(function (el) {
      if (el.id !== "identity") el.textContent = t(el.dataset.i18n);
    });
    input.placeholder = t("placeholder");
    document.querySelectorAll(".lang").forEach(function (b) {
      b.setAttribute("aria-pressed", String(b.dataset.lang === lang));
    });
    showIdentity();
  }

  function showIdentity() {
    identityLine.textContent = identity.verified
      ? t("verified", { name: identity.name || "" })
      : t("anonymous");
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function scrollDown() { log.scrollTop = log.scrollHeight; }

  function clearButtons() {
    log.querySelectorAll(".replies").forEach(function (group) { group.remove(); });
  }

  function addMessage(role, text, extra) {
    extra = extra || {};
    var item = el("li", "msg msg--" + role);
    var who = role === "user" ? t("you") : role === "agent" ? t("agent", { name: extra.agent }) : t("bot");
    item.appendChild(el("span", "msg__who", who));
    if (text) {
      var bubble = el("p", "msg__bubble", text);
      if (HAN.test(text)) bubble.lang = "zh-CN";
      item.appendChild(bubble);
    }
    if (extra.custom) item.appendChild(renderCard(extra.custom));
    if (extra.quick_replies && extra.quick_replies.length) {
      var group = el("div", "replies");
      group.setAttribute("role", "group");
      group.setAttribute("aria-label", who);
      extra.quick_replies.forEach(function (reply) {
        var button = el("button", "reply", reply.title);
        button.type = "button";
        button.addEventListener("click", function () { send(reply.payload, reply.title); });
        group.appendChild(button);
      });
      item.appendChild(group);
    }
    log.appendChild(item);
    scrollDown();
    return item;
  }

  function placeholderPicture(name) {
    var pic = el("div", "card__picture", (name || "?").trim().charAt(0).toUpperCase());
    pic.setAttribute("role", "img");
    pic.setAttribute("aria-label", name || "");
    return pic;
  }

  function row(list, label, value) {
    if (value === undefined || value === null || value === "") return;
    list.appendChild(el("dt", null, label));
    list.appendChild(el("dd", null, value));
  }

  function renderCard(card) {
    var box = el("section", "card card--" + (card.type || "custom"));
    if (card.type === "product_card") {
      box.setAttribute("aria-label", t("product") + ": " + card.name);
      box.appendChild(card.image ? Object.assign(el("img", "card__picture"), { src: card.image, alt: card.name })
                                 : placeholderPicture(card.name));
      var body = el("div", "card__body");
      body.appendChild(el("h2", "card__title", card.name));
      if (card.price) body.appendChild(el("p", "card__price", card.price));
      var variants = el("ul", "card__variants");
      (card.variants || []).forEach(function (v) {
        var label = [v.size, v.colour].filter(Boolean).join(" · ");
        var state = v.available > 0 ? t("inStock") + " (" + v.available + ")"
                  : t("outOfStock") + (v.restock_date ? ", " + t("restock", { date: v.restock_date }) : "");
        var li = el("li", v.available > 0 ? "in" : "out", label + ": " + state);
        variants.appendChild(li);
      });
      body.appendChild(variants);
      box.appendChild(body);
    } else if (card.type === "order_card") {
      box.setAttribute("aria-label", t("order") + " " + card.order_number);
      box.appendChild(el("h2", "card__title", t("order") + " " + card.order_number));
      var facts = el("dl", "card__facts");
      row(facts, t("status"), t("st_" + card.status));
      row(facts, t("carrier"), card.carrier);
      row(facts, t("tracking"), card.tracking_number);
      row(facts, t("lastEvent"), card.last_event);
      row(facts, t("eta"), card.eta);
      box.appendChild(facts);
    } else {
      box.appendChild(el("pre", null, JSON.stringify(card)));
    }
    return box;
  }

  function setTyping(on) {
    clearTimeout(typingTimer);
    typing.hidden = !on;
    if (on) typingTimer = setTimeout(function () { typing.hidden = true; }, 20000);
  }

  function showError(text) {
    errorLine.textContent = text;
    errorLine.hidden = !text;
  }

  function followLanguageOf(text) {
    // The page follows the language the customer types in (a language-neutral line changes nothing).
    if (HAN.test(text) && lang !== "zh") applyLanguage("zh");
    else if (!HAN.test(text) && LATIN.test(text) && lang !== "en") applyLanguage("en");
  }

  var socket = io({ path: "/socket.io", transports: ["websocket", "polling"] });

  function resumeKey(id) {
    try {
      var resume = JSON.parse(sessionStorage.getItem(RESUME_KEY) || "null");
      return resume && resume.session_id === id ? resume.key : null;
    } catch (e) {
      return null;
    }
  }

  function requestSession() {
    var id = sessionId();
    socket.emit("session_request", {
      session_id: id,
      resume_key: id ? resumeKey(id) : null,
      customData: { customer_token: sessionStorage.getItem(TOKEN_KEY), language: lang }
    });
  }

  function newConversation() {
    localStorage.removeItem(SESSION_KEY);
    sessionStorage.removeItem(RESUME_KEY);
    currentId = null;
    log.innerHTML = "";
    showError("");
    setTyping(false);
    freshSession = true;
    if (socket.connected) requestSession();
    input.focus();
  }

  function send(text, shown) {
    text = (text || "").trim();
    if (!text) return;
    if (!socket.connected) { showError(t("reconnecting")); return; }
    showError("");
    clearButtons();
    if (!text.startsWith("/")) followLanguageOf(text);
    addMessage("user", shown || text);
    socket.emit("user_uttered", {
      message: text,
      session_id: sessionId(),
      customData: { language: lang }
    });
    setTyping(true);
  }

  socket.on("connect", function () {
    statusLine.hidden = true;
    requestSession();
  });
  socket.on("disconnect", function () {
    statusLine.textContent = t("reconnecting");
    statusLine.hidden = false;
    setTyping(false);
  });
  socket.io.on("reconnect_attempt", function () {
    statusLine.textContent = t("reconnecting");
    statusLine.hidden = false;
  });
  socket.on("resume_key", function (resume) {
    if (resume && resume.session_id && resume.key) {
      sessionStorage.setItem(RESUME_KEY, JSON.stringify(resume));
    }
  });
  socket.on("session_confirm", function (confirmed) {
    var id = typeof confirmed === "string" ? confirmed : (confirmed || {}).session_id;
    currentId = id;
    storeSession(id, tokenSubject());
    document.body.dataset.session = id;
  });
  socket.on("identity", function (info) {
    identity = info || { verified: false };
    showIdentity();
    // A guest's conversation belongs to no customer.
    if (!identity.verified && sessionId()) storeSession(sessionId(), null);
    if (!identity.verified && (identity.reason === "expired" || identity.reason === "invalid")) {
      sessionStorage.removeItem(TOKEN_KEY);
      showError(t(identity.reason));
    }
  });
  socket.on("history", function (payload) {
    log.innerHTML = "";
    var messages = (payload && payload.messages) || [];
    messages.forEach(function (m, i) {
      addMessage(m.role, m.text, {
        custom: m.custom, agent: m.agent,
        quick_replies: i === messages.length - 1 ? m.quick_replies : null
      });
    });
    document.body.dataset.ready = "true";
    if (freshSession) {
      freshSession = false;
      document.body.dataset.fresh = "true";
    }
  });
  socket.on("bot_uttered", function (message) {
    setTyping(false);
    message = message || {};
    addMessage(message.agent ? "agent" : "bot", message.text, {
      custom: message.custom, agent: message.agent, quick_replies: message.quick_replies
    });
  });
  socket.on("kefu_error", function (error) {
    setTyping(false);
    showError((error && error.message) || "Error");
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value;
    input.value = "";
    send(text);
    input.focus();
  });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  document.getElementById("new-conversation").addEventListener("click", newConversation);
  document.querySelectorAll(".lang").forEach(function (button) {
    button.addEventListener("click", function () {
      if (button.dataset.lang === lang) return;
      applyLanguage(button.dataset.lang);
      var title = button.textContent;
      send('/switch_language{"target_language":"' + lang + '"}', title);
    });
  });

  applyLanguage(lang);
  statusLine.textContent = t("connecting");
  statusLine.hidden = false;
})();
