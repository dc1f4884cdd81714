// Loads the WebAssembly module (kept out of index.html so the page runs under script-src 'self').
import init, * as api from "./m365-registrator.js";

const status = document.getElementById("boot-status");
init({ module_or_path: "./m365-registrator_bg.wasm" })
  .then(() => {
    // The engine's JavaScript API for BWeb's own scripts (see README, "JavaScript API").
    window.m365Registrator = api;
    window.dispatchEvent(new Event("m365-registrator-ready"));
  })
  .catch((e) => {
    if (status) {
      status.textContent = "This page could not start: " + e + ". Use a current browser with WebAssembly enabled.";
      status.className = "boot-error";
    }
  });
