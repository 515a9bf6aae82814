/** Reading counters out of a Prometheus text exposition (pure: text in, numbers out). */

/**
 * The sum of every sample of `family` whose labels contain each of `labels` (`result="answer"`),
 * or 0 when it has none. Only the family itself: `x_total` does not match `x_total_created`.
 */
export function sumSamples(text: string, family: string, labels: readonly string[] = []): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(family)) continue;
    const rest = line.slice(family.length);
    if (!rest.startsWith(' ') && !rest.startsWith('{')) continue;
    const close = rest.lastIndexOf('}');
    const labelText = rest.startsWith('{') ? rest.slice(1, close) : '';
    if (!labels.every((l) => labelText.includes(l))) continue;
    const value = Number(rest.slice(close + 1).trim().split(' ')[0]);
    if (Number.isFinite(value)) total += value;
  }
  return total;
}
