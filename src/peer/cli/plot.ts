import * as vega from 'vega'
import { compile, type TopLevelSpec } from 'vega-lite'

export interface PlotSeries {
  name: string
  points: ReadonlyArray<readonly [number, number]>
  /** drawn thin and faint, as one of many runs behind their median */
  faint?: boolean
  /** the legend entry when several lines share one (each seed's run under "one line per seed") */
  legend?: string
}

/** A shaded range per x (a band between lo and hi), named in the legend like a series. */
export interface PlotBand {
  name: string
  points: ReadonlyArray<readonly [number, number, number]>
}

/** A dashed reference line: y = value (a tolerance) or x = value (a phase boundary), labelled. */
export interface PlotRule {
  axis: 'x' | 'y'
  value: number
  label: string
}

export interface LineChartOptions {
  title: string
  xTitle: string
  yTitle: string
  logY?: boolean
  width?: number
  height?: number
  bands?: readonly PlotBand[]
  rules?: readonly PlotRule[]
  /** where the legend sits, inside the frame (default top-right) */
  legend?: 'top-right' | 'top-left' | 'bottom-right' | 'bottom-left'
  /** the x values are days: milliseconds since 1970 (UTC), shown as dates YYYY-MM-DD */
  timeX?: boolean
}

/** A date YYYY-MM-DD as the x value of a chart with `timeX`. */
export const dateX = (date: string): number => Date.parse(`${date}T00:00:00Z`)

const usable = (x: number, y: number, logY: boolean | undefined): boolean => Number.isFinite(x) && Number.isFinite(y) && (logY !== true || y > 0)

/**
 * A line chart as a standalone SVG document, rendered headlessly by Vega (no browser, no canvas).
 * Points with a non-positive y are left out of log-scale charts rather than breaking the scale. The
 * legend sits inside the frame, so that a long series name is never cut off at the edge; bands shade a
 * range (the spread of runs around their median), rules mark tolerances and phase boundaries.
 */
export async function lineChartSvg (series: PlotSeries[], options: LineChartOptions): Promise<string> {
  const values = series.flatMap((line) => line.points
    .filter(([x, y]) => usable(x, y, options.logY))
    .map(([x, y]) => ({ series: line.legend ?? line.name, line: line.name, x, y, faint: line.faint === true })))
  const bandValues = (options.bands ?? []).flatMap((band) => band.points
    .filter(([x, lo, hi]) => usable(x, lo, options.logY) && usable(x, hi, options.logY))
    .map(([x, lo, hi]) => ({ series: band.name, x, lo, hi })))
  const y = {
    type: 'quantitative' as const,
    title: options.yTitle,
    scale: options.logY === true ? { type: 'log' as const } : { zero: false },
    axis: options.logY === true ? { format: '.0e' } : {}
  }
  const x = options.timeX === true
    ? { field: 'x', type: 'temporal' as const, title: options.xTitle, scale: { type: 'utc' as const }, axis: { format: '%Y-%m-%d', labelAngle: -30 } }
    : { field: 'x', type: 'quantitative' as const, title: options.xTitle }
  const color = {
    field: 'series',
    type: 'nominal' as const,
    title: null,
    legend: { orient: options.legend ?? 'top-right', fillColor: 'white', strokeColor: '#bbbbbb', padding: 6, labelLimit: 360, symbolType: 'stroke' as const }
  }
  const rules = options.rules ?? []
  const layers: unknown[] = []
  if (bandValues.length > 0) {
    layers.push({ data: { values: bandValues }, mark: { type: 'area', opacity: 0.2 }, encoding: { x, y: { ...y, field: 'lo' }, y2: { field: 'hi' }, color } })
  }
  layers.push({
    data: { values },
    mark: { type: 'line' },
    encoding: {
      x,
      y: { ...y, field: 'y' },
      color,
      detail: { field: 'line' },
      strokeWidth: { condition: { test: 'datum.faint', value: 0.7 }, value: 1.8 },
      opacity: { condition: { test: 'datum.faint', value: 0.45 }, value: 1 }
    }
  })
  for (const axis of ['x', 'y'] as const) {
    const list = rules.filter((rule) => rule.axis === axis && (axis === 'x' || options.logY !== true || rule.value > 0)).map((rule) => ({ value: rule.value, label: rule.label }))
    if (list.length === 0) continue
    layers.push({ data: { values: list }, mark: { type: 'rule', strokeDash: [5, 4], color: '#555555' }, encoding: axis === 'x' ? { x: { ...x, field: 'value' } } : { y: { ...y, field: 'value' } } })
    layers.push({
      data: { values: list },
      mark: axis === 'x' ? { type: 'text', align: 'left', baseline: 'top', dx: 3, dy: 3, y: 0, fontSize: 10, color: '#333333' } : { type: 'text', align: 'left', baseline: 'bottom', dx: 3, dy: -2, x: 0, fontSize: 10, color: '#333333' },
      encoding: axis === 'x' ? { x: { ...x, field: 'value' }, text: { field: 'label' } } : { y: { ...y, field: 'value' }, text: { field: 'label' } }
    })
  }
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: options.title,
    width: options.width ?? 640,
    height: options.height ?? 360,
    layer: layers
  } as unknown as TopLevelSpec
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' })
  try {
    return await view.toSVG()
  } finally {
    view.finalize()
  }
}

/** A bar chart (a histogram over given bins) as a standalone SVG document, rendered as lineChartSvg is. */
export async function barChartSvg (bars: ReadonlyArray<{ from: number, to: number, value: number }>, options: { title: string, xTitle: string, yTitle: string, reference?: number, width?: number, height?: number }): Promise<string> {
  const values = bars.filter((bar) => Number.isFinite(bar.value)).map((bar) => ({ from: bar.from, to: bar.to, value: bar.value }))
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: options.title,
    width: options.width ?? 480,
    height: options.height ?? 300,
    layer: [
      {
        data: { values },
        mark: { type: 'rect', stroke: 'white' },
        encoding: {
          x: { field: 'from', type: 'quantitative', title: options.xTitle },
          x2: { field: 'to' },
          y: { field: 'value', type: 'quantitative', title: options.yTitle }
        }
      },
      ...(options.reference === undefined
        ? []
        : [{ data: { values: [{ y: options.reference }] }, mark: { type: 'rule' as const, strokeDash: [4, 4] }, encoding: { y: { field: 'y', type: 'quantitative' as const } } }])
    ]
  } as TopLevelSpec
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' })
  try {
    return await view.toSVG()
  } finally {
    view.finalize()
  }
}
