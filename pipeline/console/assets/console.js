// vigil console: live alert wall, acknowledgements without reload, camera
// health refresh with camera-down cards, durations that count, the audible cue
// for unacknowledged alarms, and the re-login when a session ends. Plain JavaScript, vendored; no build step, no CDN.
"use strict";

(function () {
  const page = document.querySelector(".wallpage");
  if (!page) return;
  const wall = document.getElementById("wall");
  const empty = document.getElementById("empty");
  const count = document.getElementById("count");
  const offline = document.getElementById("offline");

  function refreshCount() {
    const n = wall.querySelectorAll(".card:not(.camdown)").length;
    count.textContent = n;
    empty.hidden = n > 0;
    const loud = alarming().length;
    document.title = (loud ? "(" + loud + "!) " : "") + document.title.replace(/^\(\d+!\) /, "");
  }

  // Unacknowledged alerts of the severities `[console] sound` names: they
  // sound and mark the tab title.
  const soundFor = (page.dataset.sound || "").split(",").filter(Boolean);
  function alarming() {
    return Array.prototype.filter.call(wall.querySelectorAll(".card:not(.acked)"), function (c) {
      return soundFor.some(function (s) { return c.classList.contains("sev-" + s); });
    });
  }

  // Cards arriving above a scrolled view are counted on a button that
  // scrolls back up: an operator reading older cards still sees them come.
  const newer = document.getElementById("newer");
  let unseen = 0;
  function wallTopVisible() { return wall.getBoundingClientRect().top >= 0; }
  function seen() { unseen = 0; newer.hidden = true; }
  newer.addEventListener("click", function () { window.scrollTo({ top: 0 }); seen(); });
  window.addEventListener("scroll", function () { if (wallTopVisible()) seen(); }, { passive: true });

  function upsert(update) {
    const old = document.getElementById("alert-" + update.id);
    if (update.resolved) {
      if (old) old.remove();
      refreshCount();
      return;
    }
    const holder = document.createElement("div");
    holder.innerHTML = update.html;
    const card = holder.firstElementChild;
    if (old) {
      // Keep what the operator is typing.
      const typed = old.querySelector("input[name=note]");
      const note = card.querySelector("input[name=note]");
      if (typed && note && typed.value) note.value = typed.value;
      // ... and its tick and the keyboard's focus (an update must not drop
      // a card from "acknowledge selected").
      const ticked = old.querySelector(".pick input");
      const tick = card.querySelector(".pick input");
      if (ticked && tick) tick.checked = ticked.checked;
      if (old.classList.contains("focus")) card.classList.add("focus");
      old.replaceWith(card);
    } else {
      wall.prepend(card);
      if (!wallTopVisible()) {
        unseen += 1;
        newer.textContent = unseen + " " + newer.dataset.label;
        newer.hidden = false;
      }
      if (alarming().indexOf(card) >= 0) beep();
    }
    refreshCount();
    tick();
  }

  // A picture that cannot be had (another node down, or no compound secret
  // to fetch it with) shows the kind's icon, not a broken image.
  wall.addEventListener("error", function (e) {
    const img = e.target;
    if (img.tagName !== "IMG" || !img.closest(".card")) return;
    const none = document.createElement("div");
    none.className = "noshot";
    const icon = img.closest(".card").querySelector("h3 svg");
    if (icon) none.appendChild(icon.cloneNode(true));
    img.replaceWith(none);
  }, true);

  // Server-sent events: the browser resends Last-Event-ID when it reconnects,
  // so the server sends exactly what was missed. Sessions are kept in the
  // store, so a restarted vigil takes the wall back from its cursor; a session
  // that did end covers the wall with a re-login, never a silent retry loop.
  const relogin = document.getElementById("relogin");
  const asScript = { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } };
  function loggedOut() {
    relogin.hidden = false;
    if (source) source.close();
  }
  let source;
  function connect() {
    if (!relogin.hidden) return;
    source = new EventSource("/live?after=" + encodeURIComponent(page.dataset.cursor));
    source.addEventListener("card", function (e) {
      offline.hidden = true;
      if (e.lastEventId) page.dataset.cursor = e.lastEventId;
      upsert(JSON.parse(e.data));
    });
    // Other nodes' unresolved alerts, every id: the rest were resolved.
    source.addEventListener("elsewhere", function (e) {
      const ids = JSON.parse(e.data);
      wall.querySelectorAll(".card.remote").forEach(function (card) {
        if (ids.indexOf(card.dataset.id) < 0) card.remove();
      });
      refreshCount();
    });
    source.onopen = function () { offline.hidden = true; };
    source.onerror = function () {
      offline.hidden = false;
      // A 401 closes the stream; so does a server going away mid-response.
      // Ask which it was before trying again.
      if (source.readyState !== EventSource.CLOSED) return;
      fetch("/session", asScript)
        .then(function (r) {
          if (r.status === 401) loggedOut(); else setTimeout(connect, 1000);
        })
        .catch(function () { setTimeout(connect, 2000); });
    };
  }
  connect();

  // Acknowledge and resolve without leaving the page; the card changes when
  // the store says so (over the live feed), on every console at once.
  wall.addEventListener("submit", function (e) {
    const form = e.target;
    if (!form.classList.contains("ackform")) return;
    e.preventDefault();
    const body = new URLSearchParams(new FormData(form));
    if (e.submitter && e.submitter.name) body.set(e.submitter.name, e.submitter.value);
    // The note goes with this action only, never again with the next one.
    const note = form.querySelector("input[name=note]");
    const typed = note ? note.value : "";
    if (note) note.value = "";
    // getAttribute: `form.action` would be the button named "action".
    fetch(form.getAttribute("action"), {
      method: "POST",
      body: body,
      headers: { "X-Requested-With": "fetch" },
      credentials: "same-origin",
    }).then(function (r) {
      if (r.status === 401) loggedOut();
      if (!r.ok) {
        form.dataset.error = r.status;
        if (note && !note.value) note.value = typed;
      }
      form.classList.toggle("refused", !r.ok);
    });
  });

  function clock(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    const two = function (n) { return (n < 10 ? "0" : "") + n; };
    return s >= 3600
      ? Math.floor(s / 3600) + ":" + two(Math.floor(s / 60) % 60) + ":" + two(s % 60)
      : Math.floor(s / 60) + ":" + two(s % 60);
  }
  // Not acknowledged within `[console] escalate_after_s`: the card says it
  // went to the supervisor (the console publishes that once on MQTT).
  const escalateMs = Number(page.dataset.escalateMs) || 0;
  function tick() {
    const now = Date.now();
    wall.querySelectorAll(".card").forEach(function (card) {
      const end = card.dataset.end ? Number(card.dataset.end) : now;
      const d = card.querySelector(".duration");
      if (d) d.textContent = clock(end - Number(card.dataset.start));
      const overdue = escalateMs > 0 && !card.classList.contains("acked") &&
        !card.classList.contains("camdown") && now - Number(card.dataset.start) >= escalateMs;
      if (overdue && !card.classList.contains("escalated")) {
        card.classList.add("escalated");
        const note = document.createElement("p");
        note.className = "escalation";
        note.textContent = page.dataset.escalated;
        const body = card.querySelector(".body");
        if (body) body.insertBefore(note, body.firstChild);
      } else if (!overdue && card.classList.contains("escalated")) {
        card.classList.remove("escalated");
        const note = card.querySelector(".escalation");
        if (note) note.remove();
      }
    });
  }
  setInterval(tick, 1000);

  // The camera panel's filter, by name or id; kept through each refresh.
  const camfilter = document.getElementById("camfilter");
  function filterCameras() {
    const q = camfilter.value.trim().toLowerCase();
    cameras.querySelectorAll(".camera").forEach(function (c) {
      const hit = !q || (c.dataset.name || "").toLowerCase().includes(q) || c.dataset.camera.toLowerCase().includes(q);
      c.classList.toggle("filtered", !hit);
    });
  }
  camfilter.addEventListener("input", filterCameras);

  // Camera health: state, fps and a fresh thumbnail every few seconds.
  const cameras = document.getElementById("cameras");
  // Every second: a camera that goes down must reach the wall within
  // `stall_s` + 2 s (thumbnails still change every 3 s).
  setInterval(function () {
    if (!relogin.hidden) return;
    fetch("/cameras", asScript)
      .then(function (r) {
        if (r.status === 401) loggedOut();
        return r.ok ? r.text() : Promise.reject(r.status);
      })
      .then(function (html) { cameras.innerHTML = html; filterCameras(); downCards(); })
      .catch(function () {});
  }, 1000);

  // A camera reconnecting or failed gets a card of its own at the head of
  // the wall, sounding like a high alert, until it is back.
  function downCards() {
    const down = {};
    let fresh = false;
    cameras.querySelectorAll(".camera.state-reconnecting, .camera.state-failed").forEach(function (cam) {
      const id = cam.dataset.camera;
      down["camdown-" + id] = true;
      let card = document.getElementById("camdown-" + id);
      if (!card) {
        card = document.createElement("article");
        card.id = "camdown-" + id;
        card.className = "card camdown sev-high pin";
        card.dataset.since = new Date().toLocaleTimeString(document.documentElement.lang, {
          hour12: false, timeZone: page.dataset.zone || undefined });
        card.innerHTML = '<div class="body"><h3></h3><p class="camera"></p><p class="reason"></p></div>';
        wall.prepend(card);
        fresh = true;
      }
      card.querySelector("h3").textContent = page.dataset.camdown;
      card.querySelector(".camera").textContent =
        cam.dataset.name + " \u00b7 " + cam.dataset.label + " \u00b7 " + card.dataset.since;
      card.querySelector(".reason").textContent = cam.dataset.reason || "";
    });
    wall.querySelectorAll(".card.camdown").forEach(function (card) {
      if (!down[card.id]) card.remove();
    });
    refreshCount();
    if (fresh) beep();
  }

  // Audible cue while an alarming alert is unacknowledged: on by default.
  // Browsers only play sound after a click on the page; until then the
  // button says so, and any click on the page unlocks it.
  const sound = document.getElementById("sound");
  let audio = null;
  let on = localStorage.getItem("vigil-sound") !== "off";
  function label() {
    const blocked = on && audio && audio.state === "suspended";
    sound.classList.toggle("blocked", !!blocked);
    sound.textContent = blocked ? sound.dataset.blocked : on ? sound.dataset.on : sound.dataset.off;
  }
  function unlock() {
    if (!audio) {
      try { audio = new (window.AudioContext || window.webkitAudioContext)(); } catch (e) { return; }
    }
    if (audio.state === "suspended") audio.resume().then(label, label);
    label();
  }
  label();
  sound.addEventListener("click", function (e) {
    e.stopPropagation();
    on = !on;
    localStorage.setItem("vigil-sound", on ? "on" : "off");
    if (on) unlock(); else label();
  });
  document.addEventListener("click", function () { if (on) unlock(); });
  function beep() {
    if (!on) return;
    unlock();
    if (!audio || audio.state !== "running") return;
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = 880;
    gain.gain.value = 0.2;
    osc.connect(gain).connect(audio.destination);
    osc.start();
    osc.stop(audio.currentTime + 0.35);
    window.vigilBeeps = (window.vigilBeeps || 0) + 1;
  }
  setInterval(function () { if (alarming().length) beep(); }, 4000);
  downCards();

  // Filters (camera, kind, state) and list mode, kept per browser; cards
  // arriving later are filtered as they come.
  const filters = { camera: document.getElementById("fcamera"), kind: document.getElementById("fkind"), state: document.getElementById("fstate") };
  const dense = document.getElementById("dense");
  function applyFilters() {
    wall.querySelectorAll(".card[data-id]").forEach(function (card) {
      const state = card.classList.contains("acked") ? "acked" : "new";
      const hide = (filters.camera.value && card.dataset.camera !== filters.camera.value) ||
        (filters.kind.value && card.dataset.kind !== filters.kind.value) ||
        (filters.state.value && state !== filters.state.value);
      card.classList.toggle("filtered", !!hide);
    });
  }
  Object.keys(filters).forEach(function (k) {
    const saved = localStorage.getItem("vigil-filter-" + k);
    if (saved !== null && filters[k].querySelector("option[value='" + CSS.escape(saved) + "']")) filters[k].value = saved;
    filters[k].addEventListener("change", function () {
      localStorage.setItem("vigil-filter-" + k, filters[k].value);
      applyFilters();
    });
  });
  function setDense(on) {
    wall.classList.toggle("dense", on);
    dense.setAttribute("aria-pressed", on ? "true" : "false");
    localStorage.setItem("vigil-dense", on ? "on" : "off");
  }
  dense.addEventListener("click", function () { setDense(!wall.classList.contains("dense")); });
  setDense(localStorage.getItem("vigil-dense") === "on");
  new MutationObserver(applyFilters).observe(wall, { childList: true });
  applyFilters();

  // Several at once: tick cards, then acknowledge them together.
  const acksome = document.getElementById("acksome");
  function picked() {
    return Array.prototype.filter.call(wall.querySelectorAll(".card .pick input:checked"), function (i) {
      return !i.closest(".card").classList.contains("acked");
    }).map(function (i) { return i.closest(".card"); });
  }
  function refreshPicked() {
    const n = picked().length;
    acksome.hidden = n === 0;
    acksome.textContent = acksome.dataset.label + " (" + n + ")";
  }
  wall.addEventListener("change", function (e) { if (e.target.closest(".pick")) refreshPicked(); });
  function acknowledge(card) {
    const button = card.querySelector(".ackform button[value=ack]");
    if (button) button.click();
  }
  acksome.addEventListener("click", function () {
    picked().forEach(function (card) {
      acknowledge(card);
      card.querySelector(".pick input").checked = false;
    });
    refreshPicked();
  });

  // Keys: J / K move between visible cards, A acknowledges, X ticks, O opens.
  let focused = null;
  function visibleCards() {
    return Array.prototype.filter.call(wall.querySelectorAll(".card[data-id]"), function (c) {
      return !c.classList.contains("filtered");
    });
  }
  function focusCard(card) {
    if (focused) focused.classList.remove("focus");
    focused = card;
    if (!card) return;
    card.classList.add("focus");
    card.scrollIntoView({ block: "nearest" });
  }
  document.addEventListener("keydown", function (e) {
    const typing = e.target instanceof Element && e.target.closest("input, select, textarea, button");
    if (e.ctrlKey || e.metaKey || e.altKey || typing) return;
    const cards = visibleCards();
    // A card the live feed replaced (acknowledged) keeps the focus.
    if (focused && !focused.isConnected) {
      focused = document.getElementById(focused.id);
      if (focused) focused.classList.add("focus");
    }
    const at = focused ? cards.indexOf(focused) : -1;
    const key = e.key.toLowerCase();
    if (key === "j") focusCard(cards[Math.min(cards.length - 1, at + 1)] || null);
    else if (key === "k") focusCard(cards[Math.max(0, at - 1)] || null);
    else if (key === "a" && focused) acknowledge(focused);
    else if (key === "x" && focused) {
      const box = focused.querySelector(".pick input");
      if (box) { box.checked = !box.checked; refreshPicked(); }
    } else if (key === "o" && focused) {
      const link = focused.querySelector("a.shot");
      if (link) window.location = link.getAttribute("href");
    } else return;
    e.preventDefault();
  });
})();
