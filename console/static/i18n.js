// The page's language: the server puts the English catalogue in #i18n when English is chosen
// (an empty one for Chinese, the source language). T(text, {name: value}) fills {name}.
"use strict";
window.T = (() => {
  const el = document.getElementById("i18n"), catalogue = el ? JSON.parse(el.textContent) : {};
  return (text, values) => {
    let out = catalogue[text] ?? text;
    if (values) for (const [k, v] of Object.entries(values)) out = out.split(`{${k}}`).join(String(v));
    return out;
  };
})();
