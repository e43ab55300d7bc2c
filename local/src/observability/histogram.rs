//! A compact, mergeable histogram of a bucket's values, so that a period's
//! percentiles (`p50`, `p99`, any `pNN` a dashboard widget asks for) are
//! computed from the distribution of its samples, not from per-second
//! averages.
//!
//! Bins are logarithmic: a positive value `v` falls in bin
//! `ceil(ln v / ln γ)` with `γ = (1 + α) / (1 − α)`, and a bin is read back
//! as `2 γⁱ / (γ + 1)`, which is within a relative error `α` of every value
//! of the bin. With `α` = [`RELATIVE_ERROR`] (1 %), a quantile read from the
//! histogram is within 1 % of the exact sample at that rank, whatever the
//! scale (0.05 ms and 900 000 ms alike), and merging two histograms is
//! adding their bin counts, so merging is exact, associative and
//! commutative: a bucket flushed in parts, or a period of many buckets,
//! gives the same histogram as if every value had been recorded at once.
//! Negative values get their own mirrored bins and values too close to
//! zero to have a logarithm worth keeping (below [`MIN_MAGNITUDE`]) are
//! counted in a zero bin.
//!
//! Percentiles follow CloudWatch's definition: pNN is the value that NN % of
//! the period's data lies below, the rest above
//! (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Statistics-definitions.html>,
//! <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_concepts.html#Percentiles>),
//! taken as the nearest rank: the `ceil(q · n)`-th smallest sample.
//!
//! Stored form ([`Histogram::encode`]): a format byte, then LEB128 varints:
//! the zero bin's count, then per sign the number of non-empty bins and,
//! for each in ascending index order, the zigzag-encoded gap from the
//! previous index and the count. Only non-empty bins are written, and
//! latencies cluster, so a second's histogram is typically tens of bytes.
//!
//! Why not a crate: nothing in Cargo.lock does this, and the usual Rust
//! candidates do not fit the stored column. `hdrhistogram` records integers
//! at a fixed precision over a configured range (sub-millisecond
//! durations would need a scale factor per unit) and its serialized form
//! carries a header plus dense counts; `sketches-ddsketch` has the same
//! binning idea but no compact sparse encoding of its own. The whole
//! mapping, merge and encoding here is small enough to own.

use std::collections::BTreeMap;

/// The relative error of any value read back from the histogram.
pub const RELATIVE_ERROR: f64 = 0.01;

/// Values of a smaller magnitude are counted as zero (a nanosecond, in
/// milliseconds, is 1e-6: well above it).
pub const MIN_MAGNITUDE: f64 = 1e-9;

/// The first byte of an encoded histogram: the only layout so far.
const FORMAT_V1: u8 = 1;

/// `γ` of the mapping, from [`RELATIVE_ERROR`].
fn gamma() -> f64 {
    (1.0 + RELATIVE_ERROR) / (1.0 - RELATIVE_ERROR)
}

/// Why a stored histogram could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistogramDecodeError {
    #[error("histogram format {0} is not known")]
    UnknownFormat(u8),
    #[error("histogram ends in the middle of a number")]
    Truncated,
    #[error("histogram has a number that does not fit")]
    Overflow,
    #[error("histogram has {0} bytes after its end")]
    TrailingBytes(usize),
}

/// Counts of values per logarithmic bin (see the module doc).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    zero: u64,
    /// Bin index → count, for positive values.
    positive: BTreeMap<i32, u64>,
    /// Bin index of the magnitude → count, for negative values.
    negative: BTreeMap<i32, u64>,
}

impl Histogram {
    /// A histogram of the one value `value`.
    pub fn of(value: f64) -> Self {
        let mut histogram = Self::default();
        histogram.record(value);
        histogram
    }

    /// Counts `value`; a value that is not finite is not a sample (the
    /// metrics store drops those before they get here).
    pub fn record(&mut self, value: f64) {
        if !value.is_finite() {
            return;
        }
        let magnitude = value.abs();
        if magnitude < MIN_MAGNITUDE {
            self.zero += 1;
            return;
        }
        let bins = if value > 0.0 {
            &mut self.positive
        } else {
            &mut self.negative
        };
        *bins.entry(bin_of(magnitude)).or_insert(0) += 1;
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        self.zero += other.zero;
        for (&bin, &count) in &other.positive {
            *self.positive.entry(bin).or_insert(0) += count;
        }
        for (&bin, &count) in &other.negative {
            *self.negative.entry(bin).or_insert(0) += count;
        }
    }

    /// How many values were counted.
    pub fn count(&self) -> u64 {
        self.zero + self.positive.values().sum::<u64>() + self.negative.values().sum::<u64>()
    }

    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    /// The `percent`-th percentile (0–100): the value of the nearest-rank
    /// sample, `ceil(percent / 100 · n)`-th smallest, within
    /// [`RELATIVE_ERROR`]; `None` for an empty histogram or a percent out
    /// of range.
    pub fn percentile(&self, percent: f64) -> Option<f64> {
        if !(0.0..=100.0).contains(&percent) {
            return None;
        }
        let count = self.count();
        if count == 0 {
            return None;
        }
        let rank = ((percent / 100.0 * count as f64).ceil() as u64).clamp(1, count);
        let mut seen = 0;
        // Ascending values: the largest negative magnitudes first.
        for (&bin, &n) in self.negative.iter().rev() {
            seen += n;
            if seen >= rank {
                return Some(-value_of(bin));
            }
        }
        seen += self.zero;
        if seen >= rank {
            return Some(0.0);
        }
        for (&bin, &n) in &self.positive {
            seen += n;
            if seen >= rank {
                return Some(value_of(bin));
            }
        }
        // Unreachable: the counts add up to `count` ≥ `rank`.
        None
    }

    /// [`Self::percentile`] of samples known to lie in `[min, max]` (the
    /// exact extremes a statistic set keeps): the smallest and the largest
    /// sample's ranks read as `min` and `max` themselves, and any other
    /// within them (a bin's value can lie just past its samples).
    pub fn percentile_between(&self, percent: f64, min: f64, max: f64) -> Option<f64> {
        let value = self.percentile(percent)?;
        let count = self.count();
        let rank = ((percent / 100.0 * count as f64).ceil() as u64).clamp(1, count);
        Some(if rank == count {
            max
        } else if rank == 1 {
            min
        } else {
            value.clamp(min, max)
        })
    }

    /// The stored form (see the module doc).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + 3 * (self.positive.len() + self.negative.len()));
        out.push(FORMAT_V1);
        write_varint(&mut out, self.zero);
        for bins in [&self.positive, &self.negative] {
            write_varint(&mut out, bins.len() as u64);
            let mut previous: i64 = 0;
            for (&bin, &count) in bins {
                write_varint(&mut out, zigzag(i64::from(bin) - previous));
                write_varint(&mut out, count);
                previous = i64::from(bin);
            }
        }
        out
    }

    /// Reads back what [`Self::encode`] wrote.
    pub fn decode(bytes: &[u8]) -> Result<Self, HistogramDecodeError> {
        let (&format, mut rest) = bytes.split_first().ok_or(HistogramDecodeError::Truncated)?;
        if format != FORMAT_V1 {
            return Err(HistogramDecodeError::UnknownFormat(format));
        }
        let mut histogram = Histogram {
            zero: read_varint(&mut rest)?,
            ..Histogram::default()
        };
        for bins in [&mut histogram.positive, &mut histogram.negative] {
            let len = read_varint(&mut rest)?;
            let mut previous: i64 = 0;
            for _ in 0..len {
                let bin = previous
                    .checked_add(unzigzag(read_varint(&mut rest)?))
                    .ok_or(HistogramDecodeError::Overflow)?;
                let count = read_varint(&mut rest)?;
                let index = i32::try_from(bin).map_err(|_| HistogramDecodeError::Overflow)?;
                *bins.entry(index).or_insert(0) += count;
                previous = bin;
            }
        }
        if !rest.is_empty() {
            return Err(HistogramDecodeError::TrailingBytes(rest.len()));
        }
        Ok(histogram)
    }
}

/// The bin of a magnitude ≥ [`MIN_MAGNITUDE`]: every finite f64 maps
/// well inside i32 (f64::MAX lands near 35 000).
fn bin_of(magnitude: f64) -> i32 {
    (magnitude.ln() / gamma().ln()).ceil() as i32
}

/// The value a bin reads back as: the point whose relative distance to
/// both ends of the bin, `(γⁱ⁻¹, γⁱ]`, is `α`.
fn value_of(bin: i32) -> f64 {
    let gamma = gamma();
    2.0 * gamma.powi(bin) / (gamma + 1.0)
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn read_varint(bytes: &mut &[u8]) -> Result<u64, HistogramDecodeError> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first().ok_or(HistogramDecodeError::Truncated)?;
        *bytes = rest;
        let bits = u64::from(byte & 0x7f);
        if shift == 63 && bits > 1 {
            return Err(HistogramDecodeError::Overflow);
        }
        value |= bits << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(HistogramDecodeError::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact nearest-rank percentile of `values`.
    fn exact(values: &[f64], percent: f64) -> f64 {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let rank = ((percent / 100.0 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }

    fn of_all(values: &[f64]) -> Histogram {
        let mut histogram = Histogram::default();
        for &v in values {
            histogram.record(v);
        }
        histogram
    }

    /// A deterministic spread of numbers in [0, 1) (no rand dependency).
    fn uniform(n: usize, seed: u64) -> Vec<f64> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (state >> 11) as f64 / (1u64 << 53) as f64
            })
            .collect()
    }

    fn assert_within_bound(values: &[f64]) {
        let histogram = of_all(values);
        for percent in [0.0, 1.0, 10.0, 50.0, 90.0, 99.0, 99.9, 100.0] {
            let want = exact(values, percent);
            let got = histogram.percentile(percent).unwrap();
            assert!(
                (got - want).abs() <= RELATIVE_ERROR * want.abs() + 1e-12,
                "p{percent}: {got} vs exact {want}"
            );
        }
    }

    #[test]
    fn percentiles_are_within_the_relative_error_on_known_distributions() {
        // Uniform milliseconds, 1..1000.
        assert_within_bound(&(1..=1000).map(f64::from).collect::<Vec<_>>());
        // Exponential around 20 ms, sub-millisecond values included.
        let exponential: Vec<f64> = uniform(10_000, 7)
            .into_iter()
            .map(|u| -20.0 * (1.0 - u).ln())
            .collect();
        assert_within_bound(&exponential);
        // Long-tailed: log-uniform over six decades (0.01 ms to 10 s).
        let log_uniform: Vec<f64> = uniform(10_000, 11)
            .into_iter()
            .map(|u| 10f64.powf(-2.0 + 6.0 * u))
            .collect();
        assert_within_bound(&log_uniform);
        // A tail of one: p99 of 99 × 1 ms and 1 × 1000 ms is 1 ms.
        let mut spike = vec![1.0; 99];
        spike.push(1000.0);
        assert_within_bound(&spike);
        let spike = of_all(&spike);
        assert!((spike.percentile(99.0).unwrap() - 1.0).abs() <= RELATIVE_ERROR);
        assert!((spike.percentile(100.0).unwrap() - 1000.0).abs() <= 1000.0 * RELATIVE_ERROR);
    }

    #[test]
    fn known_extremes_are_read_exactly() {
        let histogram = of_all(&[1.0, 2.0, 3.0, 199.0]);
        assert_eq!(histogram.percentile_between(100.0, 1.0, 199.0), Some(199.0));
        assert_eq!(histogram.percentile_between(0.0, 1.0, 199.0), Some(1.0));
        assert_eq!(histogram.percentile_between(25.0, 1.0, 199.0), Some(1.0));
        let median = histogram.percentile_between(50.0, 1.0, 199.0).unwrap();
        assert!((median - 2.0).abs() <= 2.0 * RELATIVE_ERROR);
        assert_eq!(
            Histogram::default().percentile_between(50.0, 1.0, 2.0),
            None
        );
    }

    #[test]
    fn zero_and_negative_values_keep_their_order() {
        let values = [-50.0, -0.5, 0.0, 0.0, 3.0, 7.0];
        let histogram = of_all(&values);
        assert_eq!(histogram.count(), 6);
        assert_within_bound(&values);
        assert_eq!(histogram.percentile(50.0), Some(0.0));
    }

    #[test]
    fn merging_is_associative_and_commutative_and_equals_recording_all() {
        let values = uniform(3_000, 3);
        let parts: Vec<Histogram> = values
            .chunks(1_000)
            .map(|c| of_all(&c.iter().map(|u| u * 500.0).collect::<Vec<_>>()))
            .collect();
        let [a, b, c] = [&parts[0], &parts[1], &parts[2]];
        let mut left = a.clone();
        left.merge(b);
        left.merge(c);
        let mut right_tail = b.clone();
        right_tail.merge(c);
        let mut right = a.clone();
        right.merge(&right_tail);
        let mut reversed = c.clone();
        reversed.merge(b);
        reversed.merge(a);
        assert_eq!(left, right);
        assert_eq!(left, reversed);
        assert_eq!(
            left,
            of_all(&values.iter().map(|u| u * 500.0).collect::<Vec<_>>())
        );
        let mut with_empty = left.clone();
        with_empty.merge(&Histogram::default());
        assert_eq!(with_empty, left);
    }

    #[test]
    fn the_stored_form_reads_back_the_same() {
        let mut values: Vec<f64> = uniform(2_000, 5)
            .into_iter()
            .map(|u| 10f64.powf(-3.0 + 9.0 * u))
            .collect();
        values.extend([0.0, -4.0, -4000.0]);
        let histogram = of_all(&values);
        let bytes = histogram.encode();
        assert_eq!(Histogram::decode(&bytes), Ok(histogram));
        // Latency-like seconds: a handful of values, a handful of bytes.
        let second = of_all(&[3.1, 3.2, 3.4, 12.0, 250.0]);
        assert!(second.encode().len() <= 16, "{:?}", second.encode());
        assert_eq!(Histogram::decode(&second.encode()), Ok(second));
    }

    #[test]
    fn broken_stored_forms_are_refused() {
        let bytes = of_all(&[1.0, 2.0, 300.0]).encode();
        assert_eq!(
            Histogram::decode(&bytes[..bytes.len() - 1]),
            Err(HistogramDecodeError::Truncated)
        );
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            Histogram::decode(&longer),
            Err(HistogramDecodeError::TrailingBytes(1))
        );
        assert_eq!(
            Histogram::decode(&[9]),
            Err(HistogramDecodeError::UnknownFormat(9))
        );
        assert_eq!(Histogram::decode(&[]), Err(HistogramDecodeError::Truncated));
        assert_eq!(
            Histogram::decode(&[
                FORMAT_V1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f
            ]),
            Err(HistogramDecodeError::Overflow)
        );
    }

    #[test]
    fn an_empty_histogram_has_no_percentile_and_encodes_small() {
        let empty = Histogram::default();
        assert!(empty.is_empty());
        assert_eq!(empty.percentile(50.0), None);
        assert_eq!(empty.encode(), vec![FORMAT_V1, 0, 0, 0]);
        assert_eq!(Histogram::decode(&empty.encode()), Ok(empty));
        assert_eq!(Histogram::of(5.0).percentile(101.0), None);
    }

    #[test]
    fn varints_and_zigzag_round_trip_at_the_edges() {
        for value in [0, 1, 127, 128, 16_383, 16_384, u64::MAX] {
            let mut out = Vec::new();
            write_varint(&mut out, value);
            assert_eq!(read_varint(&mut out.as_slice()), Ok(value));
        }
        for value in [0, 1, -1, i64::from(i32::MAX), i64::from(i32::MIN)] {
            assert_eq!(unzigzag(zigzag(value)), value);
        }
    }
}
