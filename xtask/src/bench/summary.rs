//! Repeated measurements summarised as median, min and max, and latency
//! percentiles.

use serde_json::{Value, json};

/// Median, min and max of some samples, with the samples.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub samples: Vec<f64>,
}

impl Summary {
    /// `None` without samples (or with a NaN among them).
    pub fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() || samples.iter().any(|s| s.is_nan()) {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let mid = sorted.len() / 2;
        let median = if sorted.len() % 2 == 1 { sorted[mid] } else { (sorted[mid - 1] + sorted[mid]) / 2.0 };
        Some(Summary { median, min: sorted[0], max: sorted[sorted.len() - 1], samples: samples.to_vec() })
    }

    pub fn to_json(&self) -> Value {
        json!({ "median": self.median, "min": self.min, "max": self.max, "samples": self.samples })
    }

    pub fn from_json(value: &Value) -> Option<Summary> {
        let samples: Vec<f64> = value.get("samples")?.as_array()?.iter().filter_map(Value::as_f64).collect();
        Summary::of(&samples)
    }
}

/// The `p`-th percentile (0..=100) of `sorted` by the nearest-rank method;
/// `None` when empty.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_min_max_of_odd_and_even_counts() {
        let s = Summary::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(s.samples, [3.0, 1.0, 2.0], "samples keep their order");
        assert_eq!(Summary::of(&[4.0, 1.0, 2.0, 10.0]).unwrap().median, 3.0);
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(Summary::of(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn summaries_survive_json() {
        let s = Summary::of(&[5.0, 7.5]).unwrap();
        assert_eq!(Summary::from_json(&s.to_json()), Some(s));
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
