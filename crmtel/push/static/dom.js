// The page's only DOM builder. Every stored or received string goes in as text (text nodes, textContent),
// never as HTML, so a caller name like <img src=x onerror=...> shows literally.
import { t } from "./i18n.js";

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

// el("div", {className: "x", testid: "y", i18n: "page.key"}, "text", child, ...)
//   i18n / i18nParams: the text comes from the catalogue and is re-translated by relabel();
//   i18nAttrs: {placeholder: "page.key"} likewise for attributes; attrs: plain attributes (aria-*, for, ...);
//   dataset, testid (data-testid), on<event>: listeners; anything else is set as a property.
export function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null) continue;
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "testid") node.dataset.testid = value;
    else if (key === "attrs") for (const [name, v] of Object.entries(value)) node.setAttribute(name, String(v));
    else if (key === "i18n") node.dataset.i18n = value;
    else if (key === "i18nParams") node.dataset.i18nParams = JSON.stringify(value);
    else if (key === "i18nAttrs") node.dataset.i18nAttrs = JSON.stringify(value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node[key] = value;
  }
  if (node.dataset.i18n || node.dataset.i18nAttrs) translateNode(node);
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function translateNode(node) {
  if (node.dataset.i18n) {
    node.textContent = t(node.dataset.i18n, node.dataset.i18nParams ? JSON.parse(node.dataset.i18nParams) : {});
  }
  if (node.dataset.i18nAttrs) {
    for (const [attr, key] of Object.entries(JSON.parse(node.dataset.i18nAttrs))) node.setAttribute(attr, t(key));
  }
}

// After a language switch: every catalogue text under root again, inputs and their values untouched.
export function relabel(root = document) {
  for (const node of root.querySelectorAll("[data-i18n], [data-i18n-attrs]")) translateNode(node);
}

// Replace a node's text only when it changed (keeps screen readers and selections calm).
export function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}
