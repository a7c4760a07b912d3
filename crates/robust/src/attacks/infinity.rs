use super::{fill_rows, Attack, AttackContext, ThreatModel};
use crate::{Error, Submissions};
use serde::{Deserialize, Serialize};

macro_rules! constant_attack {
    ($(#[$doc:meta])* $ty:ident, $name:literal, $value:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $ty {}

        impl Attack for $ty {
            fn name(&self) -> &'static str {
                $name
            }

            fn threat_model(&self) -> ThreatModel {
                ThreatModel::Blind
            }

            fn forge(&mut self, ctx: &AttackContext<'_>, _rng: &mut dyn rand::RngCore, out: &mut Submissions) -> Result<(), Error> {
                fill_rows(out, ctx.byzantine, ctx.dim, |_| $value);
                Ok(())
            }
        }
    };
}

constant_attack!(
    /// Every coordinate `+∞` (the thesis's "Infinity" attack, positive).
    ///
    /// ```
    /// # use byzadam_robust::{attacks::PositiveInfinity, Attack, AttackContext, Submissions};
    /// # use rand::SeedableRng;
    /// let ctx = AttackContext { n: 3, byzantine: 1, dim: 2, own: None, honest: None, server: None };
    /// let mut out = Submissions::default();
    /// PositiveInfinity {}.forge(&ctx, &mut rand_chacha::ChaCha20Rng::seed_from_u64(0), &mut out)?;
    /// assert_eq!(out.as_flat(), &[f32::INFINITY; 2]);
    /// # Ok::<(), byzadam_robust::Error>(())
    /// ```
    PositiveInfinity,
    "positive_infinity",
    f32::INFINITY
);
constant_attack!(
    /// Every coordinate `−∞` (the thesis's "Infinity" attack, negative).
    NegativeInfinity,
    "negative_infinity",
    f32::NEG_INFINITY
);
constant_attack!(
    /// Every coordinate NaN.
    NotANumber,
    "nan",
    f32::NAN
);

impl crate::params::Described for PositiveInfinity {
    const PARAMS: &'static [crate::params::Param] = &[];
}

impl crate::params::Described for NegativeInfinity {
    const PARAMS: &'static [crate::params::Param] = &[];
}

impl crate::params::Described for NotANumber {
    const PARAMS: &'static [crate::params::Param] = &[];
}
