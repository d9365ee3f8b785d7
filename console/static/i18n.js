// The page's language: the server puts the English catalogue in #i18n when English is chosen
// (an empty one for Chinese, the source language). T(text, {name: value}) fills {name}.
// NAMES: the Chinese names of the engine's codes (NAMES.action.acknowledge is 受理), to T().
"use strict";
window.T = (() => {
  const el = document.getElementById("i18n"), catalogue = el ? JSON.parse(el.textContent) : {};
  return (text, values) => {
    let out = catalogue[text] ?? text;
    if (values) for (const [k, v] of Object.entries(values)) out = out.split(`{${k}}`).join(String(v));
    return out;
  };
})();
window.NAMES = (() => { const el = document.getElementById("names"); return el ? JSON.parse(el.textContent) : {action: {}}; })();
