declare module 'parse-prometheus-text-format' {
  /** One sample (or a histogram's or summary's series), values as written. */
  export interface PrometheusSample {
    value?: string;
    labels?: Record<string, string>;
    buckets?: Record<string, string>;
    quantiles?: Record<string, string>;
    count?: string;
    sum?: string;
  }
  export interface PrometheusFamily {
    name: string;
    help: string;
    type: 'COUNTER' | 'GAUGE' | 'HISTOGRAM' | 'SUMMARY' | 'UNTYPED';
    metrics: PrometheusSample[];
  }
  /** Throws an InvalidLineError on a line that is not valid text format. */
  export default function parsePrometheusTextFormat(text: string): PrometheusFamily[];
}
