use super::{Attack, AttackContext, ThreatModel};
use crate::{Error, Submissions};
use serde::{Deserialize, Serialize};

/// Label flip, a data-poisoning attack: the Byzantine workers run the honest procedure on
/// their data with every label `y` replaced by `C − 1 − y` (the thesis's `9 − y` for ten
/// classes), and send the genuine messages computed that way unchanged. (Allen-Zhu et al.,
/// ICLR 2021.)
///
/// This crate sees no data: it only says which map to apply ([`Attack::label_flip`]); the
/// simulator trains the Byzantine workers on flipped labels and passes their messages as
/// `own`, which `forge` forwards.
///
/// ```
/// # use byzadam_robust::{attacks::LabelFlip, Attack};
/// let attack = LabelFlip { classes: 10 };
/// assert_eq!(attack.label_flip().map(|m| m.flip(0)), Some(9));
/// assert_eq!(attack.flip(3), 6);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelFlip {
    /// Number of classes `C` (default 10).
    #[serde(default = "default_classes")]
    pub classes: usize,
}

fn default_classes() -> usize {
    10
}

impl Default for LabelFlip {
    fn default() -> Self {
        Self { classes: 10 }
    }
}

impl LabelFlip {
    /// `C − 1 − y` (labels outside `0..C` are left as they are).
    pub fn flip(&self, y: usize) -> usize {
        if y < self.classes {
            self.classes - 1 - y
        } else {
            y
        }
    }
}

impl Attack for LabelFlip {
    fn name(&self) -> &'static str {
        "label_flip"
    }

    fn threat_model(&self) -> ThreatModel {
        ThreatModel::DataPoisoning
    }

    fn check(&self, _n: usize, _byzantine: usize) -> Result<(), Error> {
        self.validate()
    }

    fn validate(&self) -> Result<(), Error> {
        if self.classes < 2 {
            return Err(Error::InvalidParameter {
                rule: self.name(),
                name: "classes",
                reason: format!("must be ≥ 2, got {}", self.classes),
            });
        }
        Ok(())
    }

    fn forge(
        &mut self,
        ctx: &AttackContext<'_>,
        _rng: &mut dyn rand::RngCore,
        out: &mut Submissions,
    ) -> Result<(), Error> {
        out.copy_from(ctx.require_own(self.name())?);
        Ok(())
    }

    fn label_flip(&self) -> Option<LabelFlip> {
        Some(*self)
    }
}

use crate::params::param;

impl crate::params::Described for LabelFlip {
    const PARAMS: &'static [crate::params::Param] = &[param(
        "classes",
        "int",
        "10",
        "≥ 2",
        "labels y become classes − 1 − y",
    )];
}
