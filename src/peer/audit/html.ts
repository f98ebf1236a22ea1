import { describeJob, CHECK_MEANINGS, plain } from './summary.ts'
import type { AuditFinding, AuditReport } from './verify.ts'

/**
 * `epimesh audit verify --html FILE`: the report as one self-contained HTML page (inline style, the
 * residual plot inline as SVG; no script, no link, nothing fetched), to file with the logs or send on.
 * Every string from the logs is escaped.
 */
export function escapeHtml (value: unknown): string {
  return plain(value, 2000).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;')
}

function findingRow (finding: AuditFinding): string {
  const where = `${finding.file ?? ''}${finding.line === undefined ? '' : `:${finding.line}`}`
  const phase = finding.phase === undefined ? '' : `${finding.phase} round ${finding.round}`
  return `<tr${finding.rootCause === true ? ' class="cause"' : ''}><td>${finding.rootCause === true ? 'root cause' : finding.followsFrom === undefined ? '' : `follows from ${escapeHtml(finding.followsFrom)}`}</td><td>${escapeHtml(where)}</td><td>${escapeHtml(finding.peer ?? '')}</td><td>${finding.seq ?? ''}</td><td>${escapeHtml(phase)}</td><td>${escapeHtml(finding.field ?? '')}</td><td>${escapeHtml(finding.message)}</td></tr>`
}

/** `svg` is a plot this program rendered (not text from a log), placed as is; `plotNote` says why there is none. */
export function auditHtml (report: AuditReport, options: { svg?: string, plotNote?: string, generated: string }): string {
  const verdict = report.ok ? 'VERIFIED: every check holds' : 'NOT VERIFIED'
  const causes = report.failures.filter((finding) => finding.rootCause === true)
  const ordered = [...causes, ...report.failures.filter((finding) => finding.rootCause !== true)]
  const svg = options.svg === undefined ? '' : options.svg.replace(/^<\?xml[^>]*>\s*/, '')
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>epimesh audit of job ${escapeHtml(report.job)}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
.verdict { font-weight: bold; padding: .5rem .8rem; border-radius: 4px; display: inline-block; }
.ok { background: #e3f4e3; color: #185c18; } .bad { background: #fbe3e3; color: #8a1414; }
table { border-collapse: collapse; font-size: .9rem; } td, th { border-bottom: 1px solid #ddd; padding: .25rem .5rem; text-align: left; vertical-align: top; }
tr.cause td { background: #fff4d6; font-weight: bold; }
.small { color: #666; font-size: .85rem; }
</style>
</head>
<body>
<h1>Audit of job ${escapeHtml(report.job)}</h1>
<p class="verdict ${report.ok ? 'ok' : 'bad'}">${verdict}</p>
<h2>What was run</h2>
<ul>
${describeJob(report.summary, report.job).map((line) => `<li>${escapeHtml(line)}</li>`).join('\n')}
</ul>
<h2>What was checked</h2>
<p>From the ${report.files.length} signed log file(s) alone: no record, no network.</p>
<table>
<tr><th></th><th>what it establishes</th><th>check</th><th>checked</th><th>failed</th></tr>
${report.checks.map((check) => `<tr><td>${check.failed === 0 ? 'ok' : 'FAIL'}</td><td>${escapeHtml(CHECK_MEANINGS[check.name] ?? check.name)}</td><td>${escapeHtml(check.name)}</td><td>${check.checked}</td><td>${check.failed}</td></tr>`).join('\n')}
</table>
<p>Not checkable from logs: whether each region's own records are right. The logs show that the computation on them was done as stated, not what the records hold.</p>
${report.failures.length === 0
  ? ''
  : `<h2>Failures (${report.failures.length}${causes.length > 0 ? `, ${causes.length} root cause${causes.length === 1 ? '' : 's'} first` : ''})</h2>
<table>
<tr><th></th><th>file:line</th><th>peer</th><th>entry</th><th>phase round</th><th>field</th><th>what</th></tr>
${ordered.slice(0, 2000).map(findingRow).join('\n')}
</table>${ordered.length > 2000 ? `<p>… and ${ordered.length - 2000} more (--json lists them all).</p>` : ''}`}
<h2>Residuals</h2>
${svg === '' ? `<p>${escapeHtml(options.plotNote ?? 'no plot')}</p>` : `<figure>${svg}</figure>`}
<h2>Files</h2>
<table>
<tr><th>region</th><th>peer</th><th>entries</th><th>checkpoints</th><th>file</th></tr>
${report.files.map((file) => `<tr><td>${escapeHtml(file.region)}</td><td>${escapeHtml(file.peer)}</td><td>${file.entries}</td><td>${file.checkpoints}</td><td>${escapeHtml(file.file)}</td></tr>`).join('\n')}
</table>
${report.notes.length === 0 ? '' : `<ul>${report.notes.map((note) => `<li>${escapeHtml(note)}</li>`).join('\n')}</ul>`}
<p class="small">${report.entries} entries verified in ${report.seconds.toFixed(2)} s by epimesh audit verify, ${escapeHtml(options.generated)}.</p>
</body>
</html>
`
}
