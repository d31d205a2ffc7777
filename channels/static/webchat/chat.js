// Kefu web chat: socket.io with Rasa's events (session_request/session_confirm,
// user_uttered/bot_uttered). The session id lives in localStorage, so a reload or a server
// restart continues the same conversation; the server sends its history on every (re)connect.
(function () {
  "use strict";

  var STRINGS = {
    en: {
      title: "Kefu customer service", anonymous: "Chatting as a guest",
      verified: "Signed in as {name}", typing: "Kefu is typing…", label: "Your message",
      placeholder: "Type your message…", send: "Send", connecting: "Connecting…",
      reconnecting: "Connection lost. Reconnecting…", agent: "{name} (customer service)",
      you: "You", bot: "Kefu", expired: "Your sign-in expired; you are chatting as a guest.",
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

  // A shop's site opens the chat as /webhooks/webchat/#token=<JWT>; the fragment never reaches
  // server logs, and is removed from the address bar once read.
  var hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get("token")) {
    sessionStorage.setItem(TOKEN_KEY, hash.get("token"));
    history.replaceState(null, "", location.pathname + location.search);
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

  function requestSession() {
    socket.emit("session_request", {
      session_id: localStorage.getItem(SESSION_KEY),
      customData: { customer_token: sessionStorage.getItem(TOKEN_KEY), language: lang }
    });
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
      session_id: localStorage.getItem(SESSION_KEY),
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
  socket.on("session_confirm", function (sessionId) {
    var id = typeof sessionId === "string" ? sessionId : (sessionId || {}).session_id;
    localStorage.setItem(SESSION_KEY, id);
    document.body.dataset.session = id;
  });
  socket.on("identity", function (info) {
    identity = info || { verified: false };
    showIdentity();
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
