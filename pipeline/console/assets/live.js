// vigil live view: every img[data-live] is refreshed at its own pace
// (data-every, ms), one request at a time, with the picture's delay shown;
// hidden tabs ask for nothing. An H.264 camera shown alone plays its own
// video (video[data-passthrough]) with the pictures as its fallback. On the setup page the newest frame is drawn
// with the detector's boxes, tracks, dwell timers, zones and lines, and clicks
// become zone or line TOML for the camera's config. Plain JavaScript, vendored.
"use strict";

(function () {
  function asDataUrl(blob) {
    return new Promise(function (done, fail) {
      const reader = new FileReader();
      reader.onload = function () { done(reader.result); };
      reader.onerror = fail;
      reader.readAsDataURL(blob);
    });
  }

  function showAge(box, ms) {
    const age = box && box.querySelector(".age");
    if (age && ms !== null && !isNaN(ms)) age.textContent = (ms / 1000).toFixed(1);
  }

  // Runs `step` every `every` ms, never two at once, skipping hidden tabs; a
  // step that found nothing (camera down, no picture yet) waits 2 s.
  function every(ms, step) {
    function again(started, wait) {
      setTimeout(tick, Math.max(50, wait - (performance.now() - started)));
    }
    function tick() {
      const started = performance.now();
      if (document.hidden) { again(started, ms); return; }
      step().then(function (shown) { again(started, shown ? ms : Math.max(ms, 2000)); },
        function () { again(started, Math.max(ms, 2000)); });
    }
    tick();
  }

  function poll(img) {
    const box = img.closest("figure");
    every(+img.dataset.every || 500, async function () {
      const r = await fetch(img.dataset.live, { cache: "no-store", credentials: "same-origin" });
      if (!r.ok || !(r.headers.get("content-type") || "").startsWith("image/")) return false;
      img.src = await asDataUrl(await r.blob());
      img.dataset.frames = (+img.dataset.frames || 0) + 1;
      showAge(box, parseInt(r.headers.get("x-vigil-age-ms"), 10));
      return true;
    });
  }
  document.querySelectorAll("img[data-live]:not([data-fallback])").forEach(poll);

  // An H.264 camera's own video, passed through: a fragmented MP4 read with
  // fetch and fed to Media Source Extensions (a plain <video src> takes an
  // endless stream for a finished one). The codec comes from the stream's own
  // avcC. Playback is kept within a second of the newest fragment, played
  // video is let go, a stream the server ended (a viewer that fell behind) is
  // opened again, and a camera whose video cannot play falls back to the
  // JPEG pictures.
  function codecOf(bytes) {
    for (let i = 0; i + 8 < bytes.length; i++) {
      if (bytes[i] === 0x61 && bytes[i + 1] === 0x76 && bytes[i + 2] === 0x63 && bytes[i + 3] === 0x43) {
        const hex = function (b) { return ("0" + b.toString(16)).slice(-2); };
        return "avc1." + hex(bytes[i + 5]) + hex(bytes[i + 6]) + hex(bytes[i + 7]);
      }
    }
    return null;
  }
  function joined(parts) {
    const all = new Uint8Array(parts.reduce(function (n, p) { return n + p.length; }, 0));
    let at = 0;
    parts.forEach(function (p) { all.set(p, at); at += p.length; });
    return all;
  }
  document.querySelectorAll("video[data-passthrough]").forEach(function (video) {
    const box = video.closest("figure");
    const img = box.querySelector("img[data-fallback]");
    let played = false, fellBack = false, opened = 0, current = null;
    function fallBack() {
      if (fellBack) return;
      fellBack = true;
      video.hidden = true;
      img.hidden = false;
      poll(img);
    }
    async function play() {
      opened += 1;
      const media = new MediaSource();
      video.src = URL.createObjectURL(media);
      await new Promise(function (done) { media.addEventListener("sourceopen", done, { once: true }); });
      const response = await fetch(video.dataset.passthrough, { cache: "no-store", credentials: "same-origin" });
      if (!response.ok || !response.body) throw new Error("no live video: " + response.status);
      const reader = response.body.getReader();
      let buffer = null, head = [], queue = [];
      function feed() {
        if (!buffer || buffer.updating || !queue.length) return;
        buffer.appendBuffer(joined(queue.splice(0)));
      }
      for (;;) {
        const step = await reader.read();
        if (step.done) return;
        if (!buffer) {
          head.push(step.value);
          const codec = codecOf(joined(head));
          if (!codec) continue;
          video.dataset.codec = codec;
          buffer = media.addSourceBuffer('video/mp4; codecs="' + codec + '"');
          buffer.mode = "segments";
          buffer.addEventListener("updateend", feed);
          current = buffer;
          queue = head;
        } else {
          queue.push(step.value);
        }
        feed();
        if (video.paused) video.play().catch(function () {});
      }
    }
    function run() {
      if (fellBack) return;
      play().then(function () { setTimeout(run, 500); }, function (e) {
        video.dataset.error = String(e);
        if (!played || opened > 20) fallBack(); else setTimeout(run, 1000);
      });
    }
    function counted() {
      played = true;
      video.dataset.frames = (+video.dataset.frames || 0) + 1;
      video.requestVideoFrameCallback(counted);
    }
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(counted);
    setInterval(function () {
      if (fellBack || !video.buffered.length) return;
      const end = video.buffered.end(video.buffered.length - 1);
      if (end - video.currentTime > 0.8) video.currentTime = end - 0.15;
      // Played video is let go: a camera page left open all shift stays small.
      const start = video.buffered.start(0);
      if (current && !current.updating && video.currentTime - start > 30) {
        try { current.remove(start, video.currentTime - 10); } catch (e) { /* closed meanwhile */ }
      }
      showAge(box, (end - video.currentTime) * 1000);
    }, 500);
    // Nothing within 4 s: show the pictures rather than a black box.
    setTimeout(function () { if (!played) fallBack(); }, 4000);
    if (window.MediaSource) run(); else fallBack();
  });

  const setup = document.querySelector(".setup");
  if (!setup) return;
  const canvas = document.getElementById("scene");
  const ctx = canvas.getContext("2d");
  const toml = document.getElementById("toml");
  const nameInput = document.getElementById("drawname");
  const picture = new Image();
  let scene = null;
  let mode = "zone";
  let points = [];

  const round = function (v) { return Math.round(Math.min(1, Math.max(0, v)) * 1000) / 1000; };
  const pair = function (p) { return "[" + p[0] + ", " + p[1] + "]"; };

  function writeToml() {
    const name = JSON.stringify(nameInput.value.trim() || mode + "-1");
    let text = "";
    if (mode === "zone" && points.length >= 3) {
      text = "[[cameras.zones]]\nname = " + name + "\npolygon = [" + points.map(pair).join(", ") + "]\n";
    } else if (mode === "line" && points.length === 3) {
      text = "[[cameras.lines]]\nname = " + name + "\nfrom = " + pair(points[0]) +
        "\nto = " + pair(points[1]) + "\ninside = " + pair(points[2]) + "\n";
    }
    toml.textContent = text;
    setup.dataset.points = points.length;
  }

  function path(list, close) {
    ctx.beginPath();
    list.forEach(function (p, i) {
      const x = p[0] * canvas.width, y = p[1] * canvas.height;
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    if (close) ctx.closePath();
  }

  function label(text, x, y, color) {
    ctx.font = "13px sans-serif";
    const w = ctx.measureText(text).width + 6;
    ctx.fillStyle = color;
    ctx.fillRect(x, Math.max(0, y - 16), w, 16);
    ctx.fillStyle = "#fff";
    ctx.fillText(text, x + 3, Math.max(12, y - 4));
  }

  function draw() {
    if (!picture.naturalWidth) return;
    if (canvas.width !== picture.naturalWidth || canvas.height !== picture.naturalHeight) {
      canvas.width = picture.naturalWidth;
      canvas.height = picture.naturalHeight;
    }
    ctx.drawImage(picture, 0, 0);
    ctx.lineWidth = 2;
    (scene.zones || []).forEach(function (z) {
      ctx.strokeStyle = "#f5c400";
      path(z.polygon, true);
      ctx.stroke();
      label(z.name, z.polygon[0][0] * canvas.width, z.polygon[0][1] * canvas.height, "#8a6d00");
    });
    (scene.lines || []).forEach(function (l) {
      ctx.strokeStyle = "#1e90ff";
      path([l.from, l.to], false);
      ctx.stroke();
      ctx.fillStyle = "#1e90ff";
      ctx.fillRect(l.inside[0] * canvas.width - 3, l.inside[1] * canvas.height - 3, 6, 6);
      label(l.name, l.from[0] * canvas.width, l.from[1] * canvas.height, "#0b4f91");
    });
    const trace = scene.trace;
    if (trace) {
      const sx = canvas.width / trace.width, sy = canvas.height / trace.height;
      ctx.lineWidth = 1;
      trace.detections.forEach(function (d) {
        ctx.strokeStyle = "rgba(255,255,255,0.6)";
        ctx.strokeRect(d.bbox[0] * sx, d.bbox[1] * sy, (d.bbox[2] - d.bbox[0]) * sx, (d.bbox[3] - d.bbox[1]) * sy);
      });
      ctx.lineWidth = 2;
      trace.tracks.forEach(function (t) {
        ctx.strokeStyle = "#22c55e";
        ctx.strokeRect(t.bbox[0] * sx, t.bbox[1] * sy, (t.bbox[2] - t.bbox[0]) * sx, (t.bbox[3] - t.bbox[1]) * sy);
        let text = "#" + t.id + " " + t.label + " " + t.score.toFixed(2);
        Object.keys(t.dwell_s || {}).forEach(function (z) { text += " · " + z + " " + t.dwell_s[z].toFixed(1) + "s"; });
        label(text, t.bbox[0] * sx, t.bbox[1] * sy, "#15803d");
      });
      setup.dataset.tracks = trace.tracks.length;
    }
    ctx.strokeStyle = "#ef4444";
    ctx.fillStyle = "#ef4444";
    path(points, mode === "zone" && points.length >= 3);
    ctx.stroke();
    points.forEach(function (p) { ctx.fillRect(p[0] * canvas.width - 3, p[1] * canvas.height - 3, 6, 6); });
  }

  picture.onload = draw;
  every(+setup.dataset.every || 250, async function () {
    const r = await fetch(setup.dataset.overlay, { cache: "no-store", credentials: "same-origin" });
    if (!r.ok || !(r.headers.get("content-type") || "").startsWith("application/json")) return false;
    scene = await r.json();
    picture.src = scene.jpeg;
    setup.dataset.frames = (+setup.dataset.frames || 0) + 1;
    showAge(setup, scene.age_ms);
    return true;
  });

  canvas.addEventListener("click", function (e) {
    const box = canvas.getBoundingClientRect();
    if (mode === "line" && points.length === 3) points = [];
    points.push([round((e.clientX - box.left) / box.width), round((e.clientY - box.top) / box.height)]);
    writeToml();
    draw();
  });
  setup.querySelectorAll("button[data-mode]").forEach(function (b) {
    b.addEventListener("click", function () {
      mode = b.dataset.mode;
      setup.querySelectorAll("button[data-mode]").forEach(function (o) { o.classList.toggle("on", o === b); });
      if (!nameInput.value || /^(zone|line)-1$/.test(nameInput.value)) nameInput.value = mode + "-1";
      points = [];
      writeToml();
      draw();
    });
  });
  document.getElementById("undo").addEventListener("click", function () { points.pop(); writeToml(); draw(); });
  document.getElementById("clear").addEventListener("click", function () { points = []; writeToml(); draw(); });
  nameInput.addEventListener("input", writeToml);
})();
