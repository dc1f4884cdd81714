// The JavaScript API example (js-api-example.html): loads the module the way boot.js does, then
// calls consentUrl, renderConfig and parseConsentResult. Every function throws an Error with a
// readable message on bad input, shown here as it is.
import init, { consentUrl, renderConfig, parseConsentResult } from "./m365-registrator.js";

const $ = (id) => document.getElementById(id);

function randomState() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function show(id, f) {
  try {
    const v = f();
    $(id).textContent = typeof v === "string" ? v : JSON.stringify(v, null, 2);
    $(id).className = "";
  } catch (e) {
    $(id).textContent = "Error: " + (e && e.message ? e.message : e);
    $(id).className = "field-error";
  }
}

// The redirect URI: this page's own address (register it on the app to really use the link).
const redirectUri = location.origin + location.pathname;

init({ module_or_path: "./m365-registrator_bg.wasm" })
  .then(() => {
    $("status").textContent = "Ready.";
    $("make-url").disabled = false;
    $("make-url").addEventListener("click", () =>
      show("url-out", () => consentUrl($("tenant").value, undefined, redirectUri, randomState())),
    );
    show("config-out", () =>
      renderConfig(
        {
          secret: "example-secret",
          appid: "1587ba33-8eef-4512-bcb1-6d65fd393f51",
          objectid: "8cee7605-0d5e-42b6-b269-c39f3411b5b9",
          tenant: "e4a1df55-de8a-4a83-945a-bfaabb6fa166",
          certificatePath: "/opt/bacula/etc/m365/contoso/bacula-m365-plugin-standalone-cert.pfx",
          certificatePassword: "example-password",
        },
        Math.floor(Date.now() / 1000),
      ),
    );
    show("result-out", () => parseConsentResult(location.href));
  })
  .catch((e) => {
    $("status").textContent = "The WebAssembly module could not be loaded: " + e;
    $("status").className = "boot-error";
  });
