import * as vega from 'vega'
import { compile, type TopLevelSpec } from 'vega-lite'
import { lineChartSvg } from '../cli/plot.ts'
import type { RegionGeometry } from '../federation.ts'
import type { ForecastView, Link, Member, ResidualPoint, WarningLevel } from './dashboard-data.ts'

/**
 * The operator's charts, as SVG rendered on the server: the residuals and the forecast by Vega-Lite
 * (headless, as `simulate --plot` and `audit` draw theirs), the federation's graph and map drawn
 * directly (circles, lines and paths). Every name placed in an SVG here is escaped.
 */

export const LEVEL_COLOURS: Readonly<Record<WarningLevel, string>> = Object.freeze({ green: '#2e9e44', yellow: '#f2c511', orange: '#f07c00', red: '#d62020' })
const UNKNOWN = '#d0d0d0'
const LINK_COLOURS: Readonly<Record<Link['state'], string>> = Object.freeze({ connected: '#2e9e44', missing: '#d62020', 'not seen from here': '#b0b0b0' })

export function escapeXml (value: string): string {
  return value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;')
}

/** Drops the XML declaration, so that the SVG can sit inside an HTML page. */
function inline (svg: string): string {
  return svg.replace(/^<\?xml[^>]*>\s*/, '')
}

/** The primal and dual residuals of a job per round, on a log scale. */
export async function residualChartSvg (job: string, points: readonly ResidualPoint[]): Promise<string> {
  const svg = await lineChartSvg([
    { name: 'primal residual', points: points.map((point) => [point.round, point.primal] as const) },
    { name: 'dual residual', points: points.map((point) => [point.round, point.dual] as const) }
  ], { title: `Residuals of job ${job}`, xTitle: 'round of the job', yTitle: 'relative residual', logY: true, width: 520, height: 240 })
  return inline(svg)
}

/** This region's observed counts, the forecast's mean and its 90% interval, by date when the job's window is known. */
export async function forecastChartSvg (view: ForecastView): Promise<string> {
  const dated = view.forecast.every((entry) => entry.date !== null) && view.observed.every((entry) => entry.date !== null)
  const x = dated
    ? { field: 'x', type: 'temporal' as const, title: view.period === 'day' ? 'day' : 'week' }
    : { field: 'x', type: 'quantitative' as const, title: 'periods from the last one fitted' }
  const observed = view.observed.map((entry) => ({ x: dated ? entry.date : entry.index, y: entry.count, series: 'observed' }))
  const lastObserved = observed.at(-1)
  const forecast = [
    ...(lastObserved === undefined ? [] : [{ ...lastObserved, series: 'forecast (mean)', lo: lastObserved.y, hi: lastObserved.y }]),
    ...view.forecast.map((entry) => ({ x: dated ? entry.date : entry.index, y: entry.mean, lo: entry.lower, hi: entry.upper, series: 'forecast (mean)' }))
  ]
  const color = { field: 'series', type: 'nominal' as const, title: null, scale: { domain: ['observed', 'forecast (mean)', '90% interval'], range: ['#333333', '#1f6fd1', '#1f6fd1'] }, legend: { orient: 'top-left' as const, fillColor: 'white', strokeColor: '#bbbbbb', padding: 6 } }
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `${view.region}: cases, forecast and 90% interval (job ${view.job})`,
    width: 520,
    height: 240,
    layer: [
      { data: { values: forecast.map((entry) => ({ ...entry, series: '90% interval' })) }, mark: { type: 'area', opacity: 0.2 }, encoding: { x, y: { field: 'lo', type: 'quantitative', title: 'cases' }, y2: { field: 'hi' }, color } },
      { data: { values: observed }, mark: { type: 'line', point: { size: 12 } }, encoding: { x, y: { field: 'y', type: 'quantitative', title: 'cases' }, color } },
      { data: { values: forecast }, mark: { type: 'line', strokeDash: [6, 3], point: { size: 20 } }, encoding: { x, y: { field: 'y', type: 'quantitative' }, color } }
    ]
  } as unknown as TopLevelSpec
  const view_ = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' })
  try {
    return inline(await view_.toSVG())
  } finally {
    view_.finalize()
  }
}

function memberFill (member: Member): string {
  return member.level === null ? UNKNOWN : LEVEL_COLOURS[member.level]
}

function memberTitle (member: Member): string {
  const h = member.h === null ? 'h not known here' : `h ${member.h.toFixed(4)} (${member.level ?? ''}${member.hSource === 'published' ? ', published by the region' : ', this region\'s own'})`
  return `${member.region} (${member.peerId}): ${member.self ? 'this peer' : member.link === null ? 'not a neighbour' : `neighbour, ${member.link}`}; ${h}`
}

/** The federation's graph: members on a circle, this peer's links coloured by state, the others grey; members filled by warning level where h is known here. */
export function graphSvg (members: readonly Member[], links: readonly Link[]): string {
  const width = 520
  const height = 360
  const radius = Math.min(width, height) / 2 - 60
  const centre = { x: width / 2, y: height / 2 }
  const shown = members.slice(0, 200)
  const position = new Map(shown.map((member, index) => {
    const angle = -Math.PI / 2 + (2 * Math.PI * index) / Math.max(1, shown.length)
    return [member.region, { x: centre.x + radius * Math.cos(angle), y: centre.y + radius * Math.sin(angle) }]
  }))
  const lines = links.flatMap((link) => {
    const a = position.get(link.a)
    const b = position.get(link.b)
    if (a === undefined || b === undefined) return []
    const dash = link.state === 'missing' ? ' stroke-dasharray="6 4"' : link.state === 'not seen from here' ? ' stroke-dasharray="2 4"' : ''
    return [`<line class="link ${link.state.replace(/ /g, '-')}" data-a="${escapeXml(link.a)}" data-b="${escapeXml(link.b)}" x1="${a.x.toFixed(1)}" y1="${a.y.toFixed(1)}" x2="${b.x.toFixed(1)}" y2="${b.y.toFixed(1)}" stroke="${LINK_COLOURS[link.state]}" stroke-width="${link.state === 'not seen from here' ? 1.5 : 3}"${dash}><title>${escapeXml(`${link.a} - ${link.b}: ${link.state}`)}</title></line>`]
  })
  const nodes = shown.map((member) => {
    const at = position.get(member.region) as { x: number, y: number }
    const below = at.y >= centre.y
    return `<g class="member${member.self ? ' self' : ''}" data-region="${escapeXml(member.region)}"><title>${escapeXml(memberTitle(member))}</title>` +
      `<circle cx="${at.x.toFixed(1)}" cy="${at.y.toFixed(1)}" r="${member.self ? 16 : 12}" fill="${memberFill(member)}" stroke="${member.self ? '#000000' : '#555555'}" stroke-width="${member.self ? 3 : 1.5}"/>` +
      `<text x="${at.x.toFixed(1)}" y="${(at.y + (below ? 32 : -22)).toFixed(1)}" text-anchor="middle" font-size="12" font-family="sans-serif">${escapeXml(member.region)}</text>` +
      `<text x="${at.x.toFixed(1)}" y="${(at.y + (below ? 45 : -35)).toFixed(1)}" text-anchor="middle" font-size="9" font-family="monospace" fill="#666666">…${escapeXml(member.short)}</text></g>`
  })
  return `<svg xmlns="http://www.w3.org/2000/svg" class="graph" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="the federation's graph">${lines.join('')}${nodes.join('')}</svg>`
}

function rings (geometry: RegionGeometry): number[][][] {
  return geometry.type === 'Polygon' ? geometry.coordinates : geometry.coordinates.flat()
}

/**
 * The regions' outlines (GeoJSON longitude and latitude, projected equirectangularly about the mean
 * latitude), each filled by its warning level where its h is known here, grey elsewhere; this peer's
 * region outlined in black.
 */
export function mapSvg (members: readonly Member[]): string {
  const mapped = members.filter((member) => member.geometry !== null)
  const all = mapped.flatMap((member) => rings(member.geometry as RegionGeometry).flat())
  const width = 520
  const height = 360
  if (all.length === 0) return ''
  const lats = all.map((position) => position[1] as number)
  const lons = all.map((position) => position[0] as number)
  const meanLat = (Math.min(...lats) + Math.max(...lats)) / 2
  const k = Math.cos((meanLat * Math.PI) / 180)
  const minX = Math.min(...lons) * k
  const maxX = Math.max(...lons) * k
  const minY = -Math.max(...lats)
  const maxY = -Math.min(...lats)
  const scale = Math.min((width - 20) / Math.max(maxX - minX, 1e-9), (height - 20) / Math.max(maxY - minY, 1e-9))
  const project = (position: number[]): string => `${(10 + ((position[0] as number) * k - minX) * scale).toFixed(1)},${(10 + (-(position[1] as number) - minY) * scale).toFixed(1)}`
  const shapes = mapped.map((member) => {
    const geometry = member.geometry as RegionGeometry
    const d = rings(geometry).map((ring) => `M${ring.map(project).join('L')}Z`).join('')
    const label = rings(geometry)[0] ?? []
    const cx = label.reduce((total, position) => total + (position[0] as number), 0) / Math.max(1, label.length)
    const cy = label.reduce((total, position) => total + (position[1] as number), 0) / Math.max(1, label.length)
    const [tx, ty] = project([cx, cy]).split(',')
    return `<g class="region${member.self ? ' self' : ''}" data-region="${escapeXml(member.region)}"><title>${escapeXml(memberTitle(member))}</title>` +
      `<path d="${d}" fill="${memberFill(member)}" fill-rule="evenodd" stroke="${member.self ? '#000000' : '#ffffff'}" stroke-width="${member.self ? 2.5 : 1}"/>` +
      `<text x="${tx}" y="${ty}" text-anchor="middle" font-size="11" font-family="sans-serif">${escapeXml(member.region)}</text></g>`
  })
  return `<svg xmlns="http://www.w3.org/2000/svg" class="map" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="the regions' map">${shapes.join('')}</svg>`
}
