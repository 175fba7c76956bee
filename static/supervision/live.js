/* Overview live updates: listens on ws(s)://<host>/ws/alerts/ (supervision API §1 "Live push").
   - alert.created / alert.updated: the alert is put (or moved) at the top of the feed and counted
     in the alerts-by-severity chart;
   - chain.status: the chain's row is updated and new blocks are added to the blocks-per-minute chart;
   - reconnects with exponential backoff (1 s … 30 s, jittered), except after a refusal that a retry
     cannot mend: 4401 (no session: it expired, or the user signed out elsewhere) stops and says
     so with a link to sign in again, 4403 (not a regulator) stops and says so. The page is not
     reloaded: a regulator keeps what is on screen, and is told it is no longer live.
   Labels come from the page (<script type="application/json" id="live-labels">). */
(function () {
  "use strict";

  var FEED_LIMIT = 50;
  var feed = document.getElementById("alert-feed");
  var empty = document.getElementById("alert-feed-empty");
  var state = document.getElementById("live-state");
  var labelsNode = document.getElementById("live-labels");
  var labels = labelsNode ? JSON.parse(labelsNode.textContent) : {};
  var english = (document.documentElement.lang || "").indexOf("en") === 0;
  // Swedish formatting is ISO-like ("2026-11-21 08:00:00"), the format the server renders.
  var timeFormat = new Intl.DateTimeFormat("sv-SE", {
    timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false
  });

  function label(group, key) {
    return (labels[group] && labels[group][key]) || key;
  }

  function shanghai(iso) {
    if (!iso) { return "—"; }
    var date = new Date(iso);
    return isNaN(date) ? iso : timeFormat.format(date);
  }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) { node.setAttribute(name, attrs[name]); });
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function setState(name) {
    if (!state) { return; }
    state.dataset.state = name;
    state.textContent = labels[name] || name;
  }

  // --- alerts ----------------------------------------------------------------------------------

  function alertItem(alert) {
    var detailUrl = feed.dataset.detailUrl.replace(/0\/$/, alert.id + "/");
    var li = el("li", { "class": "alert-item fresh sev-" + alert.severity, "data-alert-id": alert.id,
                        "data-status": alert.status, "data-severity": alert.severity });
    li.appendChild(el("span", { "class": "badge sev sev-" + alert.severity }, label("severity", alert.severity)));
    var main = el("div", { "class": "alert-main" });
    var title = english && alert.title_en ? alert.title_en : alert.title;
    main.appendChild(el("a", { "class": "alert-title", href: detailUrl }, title));
    var meta = el("div", { "class": "meta" });
    meta.appendChild(el("span", { "class": "code" }, label("code", alert.code)));
    if (alert.chain) {
      meta.appendChild(document.createTextNode(" · "));
      meta.appendChild(el("a", { href: feed.dataset.chainUrl.replace("CHAIN", encodeURIComponent(alert.chain)) },
                          alert.chain));
      if (alert.block_height !== null && alert.block_height !== undefined) {
        meta.appendChild(document.createTextNode(" #" + alert.block_height));
      }
    }
    meta.appendChild(document.createTextNode(" · "));
    meta.appendChild(el("time", { datetime: alert.created_at }, shanghai(alert.created_at)));
    main.appendChild(meta);
    li.appendChild(main);
    li.appendChild(el("span", { "class": "badge status status-" + alert.status, "data-field": "status" },
                      label("status", alert.status)));
    return li;
  }

  function showAlert(alert, created) {
    if (!feed || !alert || alert.id === undefined) { return; }
    var old = feed.querySelector('[data-alert-id="' + String(alert.id).replace(/"/g, "") + '"]');
    if (old) {
      countAlert(old.dataset.severity, old.dataset.status, -1);
      countAlert(alert.severity, alert.status, 1);
      old.remove();
    } else if (created) {
      countAlert(alert.severity, alert.status, 1);
    }
    feed.insertBefore(alertItem(alert), feed.firstChild);
    while (feed.children.length > FEED_LIMIT) { feed.removeChild(feed.lastChild); }
    if (empty) { empty.hidden = true; }
  }

  // --- charts ----------------------------------------------------------------------------------

  function drawnFigure(id) {
    var node = document.querySelector('[data-figure="' + id + '"]');
    return node && node.data && window.Plotly ? node : null;
  }

  function redraw(chart) {
    // The arrays were changed in place: a new datarevision tells Plotly.react to look again.
    chart.layout.datarevision = (chart.layout.datarevision || 0) + 1;
    window.Plotly.react(chart, chart.data, chart.layout);
  }

  function countAlert(severity, status, delta) {
    var chart = drawnFigure("severity-figure");
    if (!chart || !chart.layout.meta) { return; }
    var column = chart.layout.meta.severities.indexOf(severity);
    var trace = chart.data.filter(function (t) { return t.meta && t.meta.status === status; })[0];
    if (column < 0 || !trace) { return; }
    trace.y[column] = Math.max(0, trace.y[column] + delta);
    redraw(chart);
  }

  var minuteFormat = new Intl.DateTimeFormat("en-GB", {
    timeZone: "Asia/Shanghai", hour: "2-digit", minute: "2-digit", hour12: false
  });

  function countBlocks(chainId, blocks) {
    var chart = drawnFigure("blocks-figure");
    if (!chart || blocks <= 0) { return; }
    var minute = minuteFormat.format(new Date());
    var traces = chart.data;
    if (!traces.length) { return; }
    if (traces[0].x[traces[0].x.length - 1] !== minute) {  // a new minute: shift the window
      traces.forEach(function (t) { t.x = t.x.slice(1).concat([minute]); t.y = t.y.slice(1).concat([0]); });
    }
    var trace = traces.filter(function (t) { return t.name === chainId; })[0];
    if (!trace) { return; }
    trace.y[trace.y.length - 1] += blocks;
    redraw(chart);
  }

  // --- chains ----------------------------------------------------------------------------------

  function updateChain(chain) {
    if (!chain || !chain.chain) { return; }
    var row = document.querySelector('tr[data-chain="' + String(chain.chain).replace(/"/g, "") + '"]');
    if (!row) { return; }
    var status = row.querySelector('[data-field="status"]');
    if (status) {
      status.className = "badge chain-" + chain.status;
      status.textContent = label("chain_status", chain.status);
    }
    var height = row.querySelector('[data-field="height"]');
    var before = parseInt(row.dataset.height, 10);
    if (typeof chain.height === "number" && !isNaN(before) && chain.height > before) {
      countBlocks(chain.chain, chain.height - before);
    }
    if (typeof chain.height === "number") { row.dataset.height = chain.height; }
    if (height && typeof chain.height === "number" && chain.height >= 0) {
      var link = height.querySelector("a");
      if (link) {
        link.textContent = chain.height;
        link.href = link.href.replace(/\/blocks\/\d+\/$/, "/blocks/" + chain.height + "/");
      } else {
        height.textContent = chain.height;
      }
    }
    if (chain.last_block_at) {
      var lag = row.querySelector('[data-field="lag"]');
      if (lag) { lag.dataset.since = chain.last_block_at; }
      var last = row.querySelector('[data-field="last_block_at"]');
      if (last) {
        last.textContent = "";
        last.appendChild(el("time", { datetime: chain.last_block_at }, shanghai(chain.last_block_at)));
      }
    }
    tickLag();
  }

  function tickLag() {
    var now = Date.now();
    document.querySelectorAll('[data-field="lag"][data-since]').forEach(function (node) {
      var since = Date.parse(node.dataset.since);
      if (isNaN(since)) { return; }
      var seconds = Math.max(0, Math.round((now - since) / 1000));
      node.textContent = seconds + " " + (labels.seconds || "s");
      node.classList.toggle("overdue", seconds > parseInt(node.dataset.stall || "600", 10));
    });
  }

  // --- socket ----------------------------------------------------------------------------------

  // Close codes of refusals (supervision/realtime/consumers.py): reconnecting cannot help.
  var CLOSE_UNAUTHENTICATED = 4401;
  var CLOSE_FORBIDDEN = 4403;
  var MIN_DELAY = 1000;
  var MAX_DELAY = 30000;
  // The server accepts a connection before refusing it, so "open" does not prove a working stream:
  // the backoff starts again from MIN_DELAY only after a connection that stayed up this long.
  var STABLE_MS = 10000;
  var delay = MIN_DELAY;

  function stopLive(name) {
    setState(name);
    if (!state) { return; }
    state.setAttribute("role", "alert");
    var login = state.dataset.loginUrl;
    if (name === "expired" && login) {
      var next = window.location.pathname + window.location.search;
      state.appendChild(document.createTextNode(" "));
      state.appendChild(el("a", { href: login + "?next=" + encodeURIComponent(next) }, labels.sign_in || "sign in"));
    }
  }

  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    var socket = new WebSocket(scheme + "//" + window.location.host + "/ws/alerts/");
    var openedAt = null;
    setState("connecting");
    socket.addEventListener("open", function () {
      openedAt = Date.now();
      setState("connected");
    });
    socket.addEventListener("message", function (event) {
      var message;
      try { message = JSON.parse(event.data); } catch (e) { return; }
      if (message.type === "alert.created" || message.type === "alert.updated") {
        showAlert(message.alert, message.type === "alert.created");
      } else if (message.type === "chain.status") {
        updateChain(message.chain);
      }
    });
    socket.addEventListener("close", function (event) {
      if (event.code === CLOSE_UNAUTHENTICATED) { stopLive("expired"); return; }
      if (event.code === CLOSE_FORBIDDEN) { stopLive("forbidden"); return; }
      if (openedAt !== null && Date.now() - openedAt >= STABLE_MS) { delay = MIN_DELAY; }
      setState("disconnected");
      var wait = delay * (0.75 + Math.random() * 0.5);
      delay = Math.min(delay * 2, MAX_DELAY);
      window.setTimeout(connect, wait);
    });
  }

  window.setInterval(tickLag, 1000);
  if (feed) { connect(); }
})();
