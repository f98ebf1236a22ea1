import * as vega from 'vega'
import { compile, type TopLevelSpec } from 'vega-lite'

export interface PlotSeries {
  name: string
  points: ReadonlyArray<readonly [number, number]>
}

export interface LineChartOptions {
  title: string
  xTitle: string
  yTitle: string
  logY?: boolean
  width?: number
  height?: number
}

/**
 * A line chart as a standalone SVG document, rendered headlessly by Vega (no browser, no canvas).
 * Points with a non-positive y are left out of log-scale charts rather than breaking the scale.
 */
export async function lineChartSvg (series: PlotSeries[], options: LineChartOptions): Promise<string> {
  const values = series.flatMap((line) => line.points
    .filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (options.logY !== true || y > 0))
    .map(([x, y]) => ({ series: line.name, x, y })))
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: options.title,
    width: options.width ?? 640,
    height: options.height ?? 360,
    data: { values },
    mark: { type: 'line', strokeWidth: 1.5 },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: options.xTitle },
      y: {
        field: 'y',
        type: 'quantitative',
        title: options.yTitle,
        scale: options.logY === true ? { type: 'log' } : { zero: false },
        axis: options.logY === true ? { format: '.0e' } : {}
      },
      color: { field: 'series', type: 'nominal', title: null }
    }
  }
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
