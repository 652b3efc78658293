// UI text in English and Simplified Chinese. The browser's language picks the first one;
// the switch (data-testid=lang-switch) toggles and remembers the choice.

const LANGS = ["en", "zh-CN"];
const STORE = "vgr.lang";
let lang = "en";
let table = {};
const listeners = [];

export function pickLanguage() {
  const saved = localStorage.getItem(STORE);
  if (LANGS.includes(saved)) return saved;
  const wanted = navigator.languages || [navigator.language || "en"];
  return wanted.some((l) => String(l).toLowerCase().startsWith("zh")) ? "zh-CN" : "en";
}

export async function setLanguage(next) {
  const resp = await fetch(`/static/i18n/${next}.json`, { credentials: "same-origin" });
  if (!resp.ok) throw new Error(`no translations for ${next}`);
  table = await resp.json();
  lang = next;
  localStorage.setItem(STORE, next);
  document.documentElement.lang = next;
  apply(document);
  for (const fn of listeners) fn(lang);
}

export function currentLanguage() {
  return lang;
}

export function otherLanguage() {
  return lang === "en" ? "zh-CN" : "en";
}

export function onLanguage(fn) {
  listeners.push(fn);
}

// t("track.summary", {points: 3, stays: 1}): the text for key with {name} placeholders filled. A key with no
// text (a rule or status added later) shows its last part: "rule.power_lost" -> "power lost".
export function t(key, vars = {}) {
  const text = table[key] ?? key.slice(key.lastIndexOf(".") + 1).replaceAll("_", " ");
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
}

// Elements with data-i18n get their text, data-i18n-placeholder their placeholder.
export function apply(root) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  }
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
}
