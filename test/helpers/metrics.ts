import parsePrometheusTextFormat, { type PrometheusFamily, type PrometheusSample } from 'parse-prometheus-text-format';

/** A sample value as the text format writes it: a float, NaN or ±Inf (prom-client writes NaN as 'Nan'). */
const VALUE = /^(?:[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|NaN|[+-]?Inf)$/;

function checkValues(family: PrometheusFamily, sample: PrometheusSample): void {
  const values = [sample.value, sample.count, sample.sum, ...Object.values(sample.buckets ?? {}), ...Object.values(sample.quantiles ?? {})];
  for (const value of values) {
    if (value !== undefined && !VALUE.test(value)) throw new Error(`${family.name}: not a sample value: ${value}`);
  }
}

/**
 * A scrape, read by a real Prometheus text-format parser (parse-prometheus-text-format, a port of
 * the reference Python client's parser): it refuses malformed lines; the values are checked to be
 * numbers here. The parser folds the series of a labelled histogram into one (and drops its count
 * and sum), so a histogram series is read by parsing that series' lines alone, without their labels.
 */
export class Scrape {
  readonly families: PrometheusFamily[];

  constructor(readonly text: string) {
    this.families = parsePrometheusTextFormat(text);
    for (const family of this.families) for (const sample of family.metrics) checkValues(family, sample);
  }

  family(name: string): PrometheusFamily | undefined {
    return this.families.find((f) => f.name === name);
  }

  /** The value of the counter or gauge series of `name` whose labels include `labels` (0 when there is none yet). */
  value(name: string, labels: Record<string, string> = {}): number {
    const sample = this.family(name)?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
    return sample?.value === undefined ? 0 : Number(sample.value);
  }

  /** The histogram series of `name` with exactly these labels: its count and cumulative buckets (zeros when none yet). */
  histogram(name: string, labels: Record<string, string>): { count: number; sum: number; buckets: Record<string, number> } {
    const type = this.family(name)?.type;
    if (type !== undefined && type !== 'HISTOGRAM') throw new Error(`${name} is a ${type}`);
    const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
    const lines = this.text.split('\n').filter((line) => {
      if (line === `# TYPE ${name} histogram`) return true;
      if (!/^\w+/.test(line) || ![`${name}_bucket`, `${name}_count`, `${name}_sum`].includes(line.slice(0, line.search(/[{ ]/)))) return false;
      const labelText = line.slice(line.indexOf('{') + 1, line.lastIndexOf('}'));
      const pairs = labelText.split(/,(?=\w+=")/).filter((p) => !p.startsWith('le='));
      return pairs.length === wanted.length && wanted.every((w) => pairs.includes(w));
    });
    // The parser reads count and sum only of a histogram without labels: keep just `le`.
    const unlabelled = lines.map((line) => line.replace(/\{(.*)\}/, (_all, inner: string) => {
      const le = inner.split(/,(?=\w+=")/).find((p) => p.startsWith('le='));
      return le ? `{${le}}` : '';
    }));
    const series = parsePrometheusTextFormat(`${unlabelled.join('\n')}\n`)[0]?.metrics[0];
    return {
      count: Number(series?.count ?? 0),
      sum: Number(series?.sum ?? 0),
      buckets: Object.fromEntries(Object.entries(series?.buckets ?? {}).map(([le, n]) => [le, Number(n)])),
    };
  }
}

/** Fetches a metrics page, checks its content type, and parses it. */
export async function scrape(url: string): Promise<Scrape> {
  const res = await fetch(url);
  if (res.status !== 200) throw new Error(`scrape ${url}: ${res.status}`);
  const type = res.headers.get('content-type') ?? '';
  if (!type.startsWith('text/plain') || !type.includes('version=0.0.4')) throw new Error(`scrape ${url}: content type ${type}`);
  return new Scrape(await res.text());
}
