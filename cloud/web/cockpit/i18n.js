// The cockpit's UI text in English and Simplified Chinese. The choice is shared with the
// map (localStorage "vgr.lang"); the browser's language decides the first time.

const STORE = "vgr.lang";
const TEXT = {
  en: {
    title: "VGR data cockpit",
    window: "Window",
    updated: "Updated",
    map: "Map",
    switchTo: "中文",
    "fleet.size": "Fleet size",
    "fleet.detail": "{devices} trackers, {online} online",
    "fleet.online": "Online rate",
    "fleet.onlineDetail": "{online} of {vehicles} vehicles; {reporting} reporting in 15 min",
    "fixes.rate": "Fixes in the last minute",
    "fixes.detail": "{avg} per minute on average, {total} in the window",
    "fixes.series": "Fixes per minute",
    "alerts.unresolved": "Unresolved alerts",
    "alerts.detail": "{open} open, {ack} acknowledged; {opened} opened in the window",
    "alerts.series": "Unresolved alerts by rule",
    "alerts.now": "Unresolved alerts by rule and severity",
    "risk.distribution": "Risk score distribution",
    "risk.detail": "{scored} vehicles scored, {unscored} not yet",
    "risk.top": "Riskiest vehicles",
    "hooks.title": "Webhook delivery health",
    "hooks.backlog": "backlog {n}",
    "hooks.latency": "delivery p50 {p50} / p95 {p95}",
    "col.rule": "Rule",
    "col.severity": "Severity",
    "col.open": "Open",
    "col.acknowledged": "Acknowledged",
    "col.vehicle": "Vehicle",
    "col.plate": "Plate",
    "col.score": "Score",
    "col.reasons": "Reasons",
    "col.alerts": "Alerts",
    "col.endpoint": "Endpoint",
    "state.succeeded": "Succeeded",
    "state.failed": "Failed",
    "state.dead": "Dead",
    "state.pending": "Pending",
    none: "none",
    "error.forbidden": "Your role cannot open the cockpit (admins and analysts only).",
    "error.load": "Could not load the cockpit: {message}",
  },
  "zh-CN": {
    title: "VGR 数据驾驶舱",
    window: "时间窗口",
    updated: "更新于",
    map: "地图",
    switchTo: "English",
    "fleet.size": "车队规模",
    "fleet.detail": "{devices} 台定位终端，{online} 台在线",
    "fleet.online": "在线率",
    "fleet.onlineDetail": "{vehicles} 辆车中 {online} 辆在线；15 分钟内上报 {reporting} 辆",
    "fixes.rate": "最近一分钟定位点",
    "fixes.detail": "平均每分钟 {avg} 个，窗口内共 {total} 个",
    "fixes.series": "每分钟定位点",
    "alerts.unresolved": "未解决告警",
    "alerts.detail": "{open} 条待处理，{ack} 条已确认；窗口内新增 {opened} 条",
    "alerts.series": "各规则未解决告警",
    "alerts.now": "按规则和级别的未解决告警",
    "risk.distribution": "风险分分布",
    "risk.detail": "已评分 {scored} 辆，未评分 {unscored} 辆",
    "risk.top": "风险最高车辆",
    "hooks.title": "Webhook 投递健康度",
    "hooks.backlog": "积压 {n}",
    "hooks.latency": "投递耗时 p50 {p50} / p95 {p95}",
    "col.rule": "规则",
    "col.severity": "级别",
    "col.open": "待处理",
    "col.acknowledged": "已确认",
    "col.vehicle": "车辆",
    "col.plate": "车牌",
    "col.score": "风险分",
    "col.reasons": "原因",
    "col.alerts": "告警",
    "col.endpoint": "接收端",
    "state.succeeded": "成功",
    "state.failed": "失败待重试",
    "state.dead": "死信",
    "state.pending": "待投递",
    none: "无",
    "error.forbidden": "您的角色无权查看数据驾驶舱（仅管理员和风控分析员）。",
    "error.load": "数据驾驶舱加载失败：{message}",
  },
};

let lang = "en";

export function pickLanguage() {
  const saved = localStorage.getItem(STORE);
  if (saved in TEXT) return saved;
  const wanted = navigator.languages || [navigator.language || "en"];
  return wanted.some((l) => String(l).toLowerCase().startsWith("zh")) ? "zh-CN" : "en";
}

export function setLanguage(next) {
  lang = next in TEXT ? next : "en";
  localStorage.setItem(STORE, lang);
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
}

export function otherLanguage() {
  return lang === "en" ? "zh-CN" : "en";
}

export function currentLanguage() {
  return lang;
}

// t("fleet.detail", {devices: 3}): the text with {name} placeholders filled; the key if missing.
export function t(key, values = {}) {
  const text = TEXT[lang][key] ?? TEXT.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
}
