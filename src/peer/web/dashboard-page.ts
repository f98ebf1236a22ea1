import { createHash } from 'node:crypto'
import { escapeXml as escape, forecastChartSvg, graphSvg, LEVEL_COLOURS, mapSvg, residualChartSvg } from './dashboard-charts.ts'
import type { DashboardSnapshot, ModelRow, WarningLevel } from './dashboard-data.ts'

/**
 * The operator's page: server-rendered HTML, its charts inline SVG, and a small script that asks for
 * the sections again every second (GET /api/fragments) and swaps in those that changed. No build
 * step, nothing fetched from elsewhere; every string from the store, the status or the federation file
 * is escaped.
 */

export type Sections = Record<'header' | 'federation' | 'job' | 'forecast' | 'models', string>

const number = (value: number | null | undefined, digits = 4): string => value === null || value === undefined || !Number.isFinite(value) ? 'NA' : value.toPrecision(digits)
const count = (value: number): string => value.toLocaleString('en-US')

function bytes (value: number): string {
  if (value < 1024) return `${value} B`
  if (value < 1024 * 1024) return `${(value / 1024).toFixed(1)} KiB`
  return `${(value / 1024 / 1024).toFixed(1)} MiB`
}

export function levelBadge (level: WarningLevel, text: string): string {
  return `<span class="level level-${level}" data-level="${level}" style="background:${LEVEL_COLOURS[level]}">${escape(text)}</span>`
}

function headerSection (snapshot: DashboardSnapshot): string {
  const mode = snapshot.live
    ? '<span class="pill live">live: served by the running peer</span>'
    : `<span class="pill saved">saved state, read-only${snapshot.statusUpdatedAt === null ? '' : ` (peer status of ${escape(snapshot.statusUpdatedAt)})`}</span>${snapshot.peerRunning ? ' <span class="pill warn">a peer now runs on this folder: its live view is epimesh start --http</span>' : ''}`
  return `<h1>${escape(snapshot.region ?? 'epimesh peer')}</h1><p>${mode} <span class="small">peer ${escape(snapshot.peerId ?? 'unknown')}${snapshot.federationId === null ? '' : `, federation ${escape(snapshot.federationId)}`}; updated <span id="updated">${escape(snapshot.generatedAt)}</span></span></p>`
}

function federationSection (snapshot: DashboardSnapshot): string {
  const rows = snapshot.members.slice(0, 500).map((member) => `<tr class="member-row" data-region="${escape(member.region)}"><td>${escape(member.region)}${member.self ? ' <b>(this peer)</b>' : ''}</td><td class="mono" title="${escape(member.peerId)}">…${escape(member.short)}</td>` +
    `<td>${member.self ? '' : member.link === null ? '<span class="small">not a neighbour</span>' : `<span class="link-${member.link}">${member.link}</span>`}</td>` +
    `<td>${member.level === null || member.h === null ? '<span class="small">not published</span>' : `${levelBadge(member.level, member.h.toFixed(4))}${member.hSource === 'published' ? ' <span class="small">published</span>' : ' <span class="small">own</span>'}`}</td></tr>`)
  const counters = snapshot.counters
  const rejected = counters === null ? [] : Object.entries(counters.rejected).filter(([, value]) => value > 0)
  const counterTable = counters === null
    ? '<p class="small">no counters: the peer has not written its status yet</p>'
    : `<table class="counters"><tr><th>messages sent</th><td>${count(counters.sent)}</td><th>received</th><td>${count(counters.received)}</td><th>accepted</th><td>${count(counters.accepted)}</td></tr>` +
      `<tr><th>bytes sent</th><td>${bytes(counters.bytesSent)}</td><th>bytes received</th><td>${bytes(counters.bytesReceived)}</td><th>send failures</th><td>${count(counters.sendFailures)}</td></tr>` +
      `<tr><th>rounds driven</th><td>${counters.rounds === null ? 'NA' : count(counters.rounds)}</td><th>jobs started</th><td>${counters.jobsStarted === null ? 'NA' : count(counters.jobsStarted)}</td><th>rejected</th><td id="rejected">${rejected.length === 0 ? 'none' : rejected.map(([code, value]) => `${escape(code)} ${count(value)}`).join('<br>')}</td></tr></table>`
  return `<h2>Federation</h2><div class="columns"><div><table class="members"><tr><th>region</th><th>peer id</th><th>link from here</th><th>h (where known here)</th></tr>${rows.join('')}</table>` +
    `<h3>This peer's counters</h3>${counterTable}</div><div>${graphSvg(snapshot.members, snapshot.links)}<p class="small">Lines: this peer's links, <span class="link-connected">connected</span> or <span class="link-missing">missing</span> (dashed); grey dotted, links between other members (not seen from here).</p></div></div>`
}

const residualCache = new Map<string, string>()

async function jobSection (snapshot: DashboardSnapshot): Promise<string> {
  const job = snapshot.job
  if (job === null) return '<h2>Current job</h2><p>no job yet</p>'
  const residual = job.primalResidual === undefined ? '' : `; primal residual ${number(job.primalResidual, 3)}, dual residual ${number(job.dualResidual, 3)}`
  const head = `<h2>Current job</h2><p id="job-line"><b>${escape(job.job)}</b>: ${escape(job.kind)} job, <span class="state-${job.state}">${job.state}</span>; phase <b id="phase">${escape(job.phaseName)}</b> <span class="small">(${escape(job.phase)})</span>, round ${job.round} of the phase, ${job.jobRound} of the job${escape(residual)}</p>`
  const residuals = snapshot.residuals
  if (residuals === null || residuals.points.length < 2) return `${head}<p class="small">no residuals to plot${job.primalResidual === undefined && job.state === 'running' ? ' in this phase (only consensus ADMM has residuals)' : ''}</p>`
  const previous = residuals.current ? '' : `<p class="small">This job has no consensus-ADMM residuals (so far); the last job that had them, ${escape(residuals.job)}:</p>`
  const last = residuals.points.at(-1)
  const key = JSON.stringify([residuals.job, residuals.source, residuals.points.length, last?.round])
  let svg = residualCache.get(key)
  if (svg === undefined) {
    svg = await residualChartSvg(residuals.job, residuals.points)
    if (residualCache.size > 8) residualCache.clear()
    residualCache.set(key, svg)
  }
  return `${head}${previous}<div class="chart" id="residual-chart" data-points="${residuals.points.length}">${svg}</div><p class="small">${residuals.points.length} rounds, ${residuals.source === 'live' ? 'sampled from the running job' : 'from this region\'s signed round log'}.</p>`
}

const forecastCache = new Map<string, string>()
const mapCache = new Map<string, string>()

/** The map, drawn again only when a region's level changes (the outlines come from the federation file, fixed while the view runs). */
function cachedMap (snapshot: DashboardSnapshot): string {
  const key = JSON.stringify([snapshot.federationId, snapshot.members.map((member) => [member.region, member.level, member.h, member.self, member.geometry === null])])
  let map = mapCache.get(key)
  if (map === undefined) {
    map = mapSvg(snapshot.members)
    if (mapCache.size > 8) mapCache.clear()
    mapCache.set(key, map)
  }
  return map
}

async function forecastSection (snapshot: DashboardSnapshot): Promise<string> {
  const view = snapshot.forecast
  const [yellow, orange, red] = snapshot.levels
  const legend = `<p class="small">Warning levels of h: ${levelBadge('green', `below ${yellow}`)} ${levelBadge('yellow', `${yellow} to ${orange}`)} ${levelBadge('orange', `${orange} to ${red}`)} ${levelBadge('red', `${red} and above`)}</p>`
  if (view === null) return `<h2>Forecast</h2><p>no forecast yet (propose one: epimesh propose --forecast)</p>${legend}`
  const key = JSON.stringify([view.job, view.createdAt, snapshot.levels])
  let chart = forecastCache.get(key)
  if (chart === undefined) {
    chart = await forecastChartSvg(view)
    if (forecastCache.size > 8) forecastCache.clear()
    forecastCache.set(key, chart)
  }
  const next = view.forecast[0]
  const published = view.published.length === 0
    ? '<p class="small">no other region published its h in this job</p>'
    : `<table><tr><th>region</th><th>h (published)</th></tr>${view.published.map((entry) => `<tr><td>${escape(entry.region)}</td><td>${levelBadge(entry.level, entry.h.toFixed(4))}</td></tr>`).join('')}</table>`
  const map = cachedMap(snapshot)
  const where = map === '' ? graphSvg(snapshot.members, snapshot.links) : map
  return `<h2>Forecast of ${escape(view.region)}</h2><div class="columns"><div>` +
    `<p id="own-risk">risk score h = ${levelBadge(view.level, `${view.h.toFixed(4)} ${view.level}`)} <span class="small">(known to this region only)</span></p>` +
    `<p>next period${next?.date === null || next === undefined ? '' : ` (${escape(next.date)})`}: ${number(next?.mean, 5)} cases, 90% interval [${number(next?.lower, 5)}, ${number(next?.upper, 5)}]; forecast 7-day incidence ${view.rate.toFixed(2)} per 100,000</p>` +
    `<p id="joint-risk">joint risk of the ${view.joint.regions} regions (masked sum, every member holds it): sum ${view.joint.sum.toFixed(4)}, mean ${levelBadge(view.joint.level, view.joint.mean.toFixed(4))}</p>` +
    `${published}${legend}<div class="chart" id="forecast-chart">${chart}</div></div>` +
    `<div><h3>${map === '' ? 'Regions (no outlines in the federation file: the graph)' : 'Map'}</h3>${where}<p class="small">Filled by warning level where h is known here (this region's own, and any a region published); grey elsewhere.</p></div></div>`
}

function modelBlock (model: ModelRow): string {
  const lineage = model.lineage
  const lineageText = lineage === null
    ? '<li>lineage: none (stored by an earlier version)</li>'
    : `<li>proposed by ${escape(lineage.proposerRegion ?? 'a non-member')}; ${escape(lineage.algorithm)}; ${escape(Object.entries(lineage.parameters).map(([name, value]) => `${name} ${String(value)}`).join(', '))}</li>` +
      `<li>regions: ${escape(lineage.regions.join(', '))}; ${model.rows} records pooled, ${lineage.ownRows} of them this region's</li>` +
      `<li>audit head: ${lineage.auditHead === null ? 'not yet written' : `${lineage.auditHead.length} entries, <span class="mono">${escape(lineage.auditHead.hash.slice(0, 16))}…</span>`}</li>` +
      `<li>warm-started from: ${escape(lineage.parent ?? 'none (a cold start)')}</li>`
  const terms = model.terms.slice(0, 100).map((term) => `<tr><td>${escape(term.term)}</td><td>${number(term.estimate, 6)}</td><td>[${number(term.lower, 5)}, ${number(term.upper, 5)}]</td><td>${term.pValue === null ? 'NA' : term.pValue < 1e-4 ? term.pValue.toExponential(2) : term.pValue.toFixed(4)}</td></tr>`)
  const table = model.kind === 'gbdt' ? '<p class="small">boosted trees: no coefficients (epimesh model shows the feature importance)</p>' : `<table class="coefficients"><tr><th>term</th><th>estimate</th><th>95% interval</th><th>p</th></tr>${terms.join('')}</table>`
  return `<details class="model" data-job="${escape(model.job)}"><summary><b>${escape(model.series)} v${model.version}</b>: job ${escape(model.job)}, ${escape(model.createdAt)}, ${model.converged ? 'converged' : 'NOT converged'} in ${model.rounds} rounds, ${model.rows} records in ${model.peers} regions</summary>${table}<ul>${lineageText}</ul></details>`
}

function modelsSection (snapshot: DashboardSnapshot): string {
  if (snapshot.models.length === 0) return '<h2>Models</h2><p>no model yet</p>'
  const shown = snapshot.models.slice(0, 30)
  return `<h2>Models (${snapshot.models.length}, newest first)</h2>${shown.map((model, index) => index === 0 ? modelBlock(model).replace('<details ', '<details open ') : modelBlock(model)).join('')}${snapshot.models.length > shown.length ? `<p class="small">… and ${snapshot.models.length - shown.length} older (epimesh models lists them all)</p>` : ''}`
}

/** A section's version: the first 16 hex digits of the SHA-256 of its HTML. */
export function sectionVersion (html: string): string {
  return createHash('sha256').update(html).digest('hex').slice(0, 16)
}

/**
 * The sections for the page's script: each with its version, and the HTML only of those whose version
 * differs from the one the page says it has (`known`: "name:version,..."), so that an unchanged map
 * or table is not sent every second.
 */
export function changedSections (sections: Sections, known: string | null): { versions: Record<string, string>, sections: Partial<Sections> } {
  const have = new Map((known ?? '').slice(0, 1000).split(',').map((entry) => entry.split(':') as [string, string | undefined]))
  const versions: Record<string, string> = {}
  const changed: Partial<Sections> = {}
  for (const [name, html] of Object.entries(sections) as Array<[keyof Sections, string]>) {
    const version = sectionVersion(html)
    versions[name] = version
    if (have.get(name) !== version) changed[name] = html
  }
  return { versions, sections: changed }
}

export async function renderSections (snapshot: DashboardSnapshot): Promise<Sections> {
  return {
    header: headerSection(snapshot),
    federation: federationSection(snapshot),
    job: await jobSection(snapshot),
    forecast: await forecastSection(snapshot),
    models: modelsSection(snapshot)
  }
}

const STYLE = `
body { font-family: system-ui, sans-serif; margin: 1rem 2rem; color: #222; line-height: 1.4; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; } h2 { font-size: 1.2rem; margin-top: 1.6rem; border-bottom: 1px solid #ddd; } h3 { font-size: 1rem; }
section { max-width: 80rem; }
.columns { display: flex; flex-wrap: wrap; gap: 2rem; align-items: flex-start; } .columns > div { flex: 1 1 28rem; min-width: 0; }
table { border-collapse: collapse; font-size: .9rem; } td, th { border-bottom: 1px solid #eee; padding: .2rem .5rem; text-align: left; vertical-align: top; }
.counters th { font-weight: normal; color: #555; }
.small { color: #666; font-size: .85rem; } .mono { font-family: monospace; }
.pill { padding: .1rem .5rem; border-radius: 1rem; font-size: .85rem; } .live { background: #e3f4e3; } .saved { background: #eef; } .warn { background: #fff0c0; }
.level { display: inline-block; padding: .05rem .45rem; border-radius: 3px; color: #000; font-weight: bold; }
.link-connected { color: #1d7a31; font-weight: bold; } .link-missing { color: #b01818; font-weight: bold; }
.state-running { color: #1f6fd1; font-weight: bold; } .state-failed { color: #b01818; font-weight: bold; }
svg { max-width: 100%; height: auto; }
details.model { margin: .4rem 0; } details.model ul { font-size: .85rem; }
`

/** The whole page, with the sections of `sections` in place; /dashboard.js keeps them current. */
export function pageHtml (sections: Sections): string {
  const versions = changedSections(sections, null).versions
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src data:">
<title>epimesh: operator's view</title>
<style>${STYLE}</style>
</head>
<body data-versions="${escape(JSON.stringify(versions))}">
<header id="header">${sections.header}</header>
<section id="federation">${sections.federation}</section>
<section id="job">${sections.job}</section>
<section id="forecast">${sections.forecast}</section>
<section id="models">${sections.models}</section>
<script src="/dashboard.js"></script>
</body>
</html>
`
}

/** The page's script: asks for the sections every second and swaps in those that changed. */
export const PAGE_SCRIPT = `'use strict'
;(function () {
  var versions = {}
  var polls = 0
  function apply (answer) {
    Object.keys(answer.sections).forEach(function (name) {
      var element = document.getElementById(name)
      if (element === null) return
      var open = Array.prototype.map.call(element.querySelectorAll('details[open]'), function (node) { return node.getAttribute('data-job') })
      element.innerHTML = answer.sections[name]
      if (name === 'models') element.querySelectorAll('details').forEach(function (node) { if (open.indexOf(node.getAttribute('data-job')) >= 0) node.setAttribute('open', '') })
    })
    versions = answer.versions
  }
  function known () {
    return Object.keys(versions).map(function (name) { return name + ':' + versions[name] }).join(',')
  }
  function poll () {
    fetch('/api/fragments?known=' + encodeURIComponent(known()), { credentials: 'same-origin', cache: 'no-store' })
      .then(function (response) { if (!response.ok) throw new Error(String(response.status)); return response.json() })
      .then(function (answer) { apply(answer); polls++; document.body.removeAttribute('data-stale'); document.body.setAttribute('data-polls', String(polls)) })
      .catch(function () { document.body.setAttribute('data-stale', 'true') })
      .then(function () { setTimeout(poll, 1000) })
  }
  versions = JSON.parse(document.body.getAttribute('data-versions') || '{}')
  setTimeout(poll, 1000)
})()
`
