// vigil site plan: each pin takes its camera's state from /plans/{i}/state
// every data-every ms: flashing while an alert nobody has taken is open,
// steady while one is in progress, struck through while the camera is down.
// Hidden tabs ask for nothing. Plain JavaScript, vendored.
"use strict";

(function () {
  const plan = document.querySelector(".plan[data-state]");
  if (!plan) return;
  const every = +plan.dataset.every || 2000;
  plan.querySelectorAll(".planpin[data-x]").forEach(function (pin) {
    pin.style.left = (+pin.dataset.x * 100) + "%";
    pin.style.top = (+pin.dataset.y * 100) + "%";
  });
  async function refresh() {
    if (document.hidden) return;
    const response = await fetch(plan.dataset.state, { credentials: "same-origin" });
    if (response.redirected || !response.ok) return;
    const states = await response.json();
    plan.querySelectorAll(".planpin[data-camera]").forEach(function (pin) {
      const s = states[pin.dataset.camera] || {};
      pin.classList.toggle("alarm", !!s.alarm);
      ["critical", "high", "warning"].forEach(function (sev) {
        pin.classList.toggle("sev-" + sev, s.alarm === sev);
      });
      pin.classList.toggle("taken", !s.alarm && s.open > 0);
      pin.classList.toggle("down", !!s.down);
      pin.querySelector(".count").textContent = s.open ? " · " + s.open : "";
    });
    plan.dataset.loaded = "1";
  }
  function loop() {
    refresh().catch(function () {}).finally(function () { setTimeout(loop, every); });
  }
  loop();
})();
