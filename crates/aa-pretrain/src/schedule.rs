//! Learning-rate schedules: constant, cosine or linear decay after an optional linear warmup.

use serde::{Deserialize, Serialize};

/// Shape of the learning rate after warmup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// The base rate throughout.
    #[default]
    Constant,
    /// Half-cosine from the base rate down to `min_ratio × base` at the last step.
    Cosine,
    /// Straight line from the base rate down to `min_ratio × base` at the last step.
    Linear,
}

/// A learning-rate schedule over `total_steps` optimiser steps.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Shape after warmup.
    #[serde(default)]
    pub kind: ScheduleKind,
    /// Steps of linear warmup from 0 to the base rate.
    #[serde(default)]
    pub warmup_steps: u64,
    /// Final rate as a fraction of the base rate (cosine and linear).
    #[serde(default)]
    pub min_ratio: f64,
}

impl Schedule {
    /// Multiplier on the base rate at step `step` (0-based) of `total_steps`.
    pub fn factor(&self, step: u64, total_steps: u64) -> f64 {
        if self.warmup_steps > 0 && step < self.warmup_steps {
            return (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
        let t = ((step - self.warmup_steps.min(step)) as f64 / span).clamp(0.0, 1.0);
        let m = self.min_ratio;
        match self.kind {
            ScheduleKind::Constant => 1.0,
            ScheduleKind::Cosine => m + (1.0 - m) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()),
            ScheduleKind::Linear => m + (1.0 - m) * (1.0 - t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let w = Schedule { kind: ScheduleKind::Cosine, warmup_steps: 4, min_ratio: 0.1 };
        assert_eq!(w.factor(0, 104), 0.25);
        assert_eq!(w.factor(3, 104), 1.0);
        assert!((w.factor(4, 104) - 1.0).abs() < 1e-12);
        assert!((w.factor(54, 104) - 0.55).abs() < 1e-12, "{}", w.factor(54, 104));
        assert!((w.factor(104, 104) - 0.1).abs() < 1e-12);
        let l = Schedule { kind: ScheduleKind::Linear, warmup_steps: 0, min_ratio: 0.0 };
        assert!((l.factor(25, 100) - 0.75).abs() < 1e-12);
        assert_eq!(Schedule::default().factor(7, 10), 1.0);
    }
}
