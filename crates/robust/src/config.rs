//! The registries: serde enums, tagged by `name`, that build the trait objects.
//!
//! ```
//! # use byzadam_robust::{AggregatorConfig, aggregators::TrimmedMean};
//! let cfg: AggregatorConfig = serde_json::from_str(r#"{"name": "cwtm", "f": 2}"#).unwrap();
//! assert_eq!(cfg, AggregatorConfig::TrimmedMean(TrimmedMean::new(2)));
//! // A misspelled key is an error, never a silent default.
//! assert!(serde_json::from_str::<AggregatorConfig>(r#"{"name": "cwtm", "F": 2}"#).is_err());
//! ```

use crate::aggregators::*;
use crate::attacks::*;
use crate::preaggregators::*;
use crate::{Aggregator, Attack, PreAggregator};

/// The whole registry, serialised as `{"aggregators": [entry], "preaggregators": […],
/// "attacks": […]}`, each entry its name, aliases, parameters (name, type, default, bound,
/// doc) and requirement: what `byzadam rules --json` prints and the Python package reads.
#[derive(Debug, Clone, Serialize)]
pub struct Registry {
    /// The aggregation rules.
    pub aggregators: Vec<crate::params::Entry>,
    /// The pre-aggregators.
    pub preaggregators: Vec<crate::params::Entry>,
    /// The attacks.
    pub attacks: Vec<crate::params::Entry>,
}

/// Every entry of the three registries ([`Registry`]).
pub fn registry() -> Registry {
    Registry {
        aggregators: AggregatorConfig::entries(),
        preaggregators: PreAggregatorConfig::entries(),
        attacks: AttackConfig::entries(),
    }
}
use serde::{Deserialize, Serialize};

macro_rules! registry {
    (
        $(#[$doc:meta])* $enum:ident => $tr:ident {
            $( $variant:ident ( $ty:ty ) = $name:literal $(, aliases [$($alias:literal),*])? ; )*
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "name", rename_all = "snake_case")]
        #[non_exhaustive]
        pub enum $enum {
            $(
                #[doc = concat!("`", $name, "`")]
                #[serde(rename = $name $($(, alias = $alias)*)?)]
                $variant($ty),
            )*
        }

        impl $enum {
            /// Every entry with its parameters and requirement, declared beside each type
            /// ([`crate::params::Described`]).
            pub fn entries() -> Vec<crate::params::Entry> {
                vec![
                    $( crate::params::Entry {
                        name: $name,
                        aliases: &[$($($alias),*)?],
                        params: <$ty as crate::params::Described>::PARAMS,
                        requirement: <$ty as crate::params::Described>::REQUIREMENT,
                    }, )*
                ]
            }

            /// Checks the parameters alone (the bounds each type declares), naming the one
            /// that is wrong: what every config path calls before any input is seen.
            pub fn validate(&self) -> Result<(), crate::Error> {
                match self {
                    $( Self::$variant(x) => x.validate(), )*
                }
            }

            /// Every accepted name: `(canonical name, aliases)`.
            pub const NAMES: &'static [(&'static str, &'static [&'static str])] = &[
                $( ($name, &[$($($alias),*)?]), )*
            ];

            /// Builds the trait object.
            pub fn build(self) -> Box<dyn $tr> {
                match self {
                    $( Self::$variant(x) => Box::new(x), )*
                }
            }

            /// The canonical name of this variant.
            pub fn name(&self) -> &'static str {
                match self {
                    $( Self::$variant(_) => $name, )*
                }
            }

            /// The canonical name for `name`, which may be an alias.
            pub fn canonical(name: &str) -> Option<&'static str> {
                Self::NAMES
                    .iter()
                    .find(|(n, aliases)| *n == name || aliases.contains(&name))
                    .map(|(n, _)| *n)
            }
        }
    };
}

registry! {
    /// Every aggregation rule, as it appears in a config: `{ name = "trimmed_mean", f = 5 }`.
    AggregatorConfig => Aggregator {
        Average(Average) = "average", aliases ["mean", "avg"];
        TrimmedMean(TrimmedMean) = "trimmed_mean", aliases ["cwtm", "coordinate_wise_trimmed_mean"];
        Median(Median) = "median", aliases ["cwm", "coordinate_wise_median"];
        MeanAroundMedian(MeanAroundMedian) = "mean_around_median", aliases ["meamed"];
        MinimumDiameterAveraging(MinimumDiameterAveraging) = "minimum_diameter_averaging", aliases ["mda"];
        LargestDistanceFilter(LargestDistanceFilter) = "largest_distance_filter";
        Krum(Krum) = "krum";
        MultiKrum(MultiKrum) = "multi_krum", aliases ["multikrum"];
        GeometricMedian(GeometricMedian) = "geometric_median", aliases ["gm", "rfa"];
        CenteredClipping(CenteredClipping) = "centered_clipping", aliases ["cc", "centred_clipping"];
        Bulyan(Bulyan) = "bulyan";
        Monna(Monna) = "monna";
        CovarianceFilter(CovarianceFilter) = "covariance_filter", aliases ["caf"];
        SmallestEigenvalueAveraging(SmallestEigenvalueAveraging) = "smallest_eigenvalue_averaging", aliases ["smea"];
    }
}

registry! {
    /// Every pre-aggregator, as it appears in a config: `{ name = "nnm", f = 5 }`.
    PreAggregatorConfig => PreAggregator {
        NearestNeighborMixing(NearestNeighborMixing) = "nearest_neighbor_mixing", aliases ["nnm", "nearest_neighbour_mixing"];
        Bucketing(Bucketing) = "bucketing";
        StaticClipping(StaticClipping) = "static_clipping", aliases ["clipping"];
        AdaptiveRobustClipping(AdaptiveRobustClipping) = "adaptive_robust_clipping", aliases ["arc"];
    }
}

registry! {
    /// Every attack, as it appears in a config: `{ name = "little" }`.
    AttackConfig => Attack {
        SignFlip(SignFlip) = "sign_flip", aliases ["signflip"];
        Empire(Empire) = "empire", aliases ["ipm", "inner_product_manipulation"];
        Little(Little) = "little";
        ALittleIsEnough(ALittleIsEnough) = "a_little_is_enough", aliases ["alie"];
        PositiveInfinity(PositiveInfinity) = "positive_infinity", aliases ["inf", "+inf", "infinity"];
        NegativeInfinity(NegativeInfinity) = "negative_infinity", aliases ["-inf", "neg_inf"];
        NotANumber(NotANumber) = "nan";
        Gaussian(Gaussian) = "gaussian", aliases ["noise", "gaussian_noise"];
        Mimic(Mimic) = "mimic";
        OptimalAlie(OptimalAlie) = "optimal_alie", aliases ["optimal_a_little_is_enough"];
        OptimalEmpire(OptimalEmpire) = "optimal_empire", aliases ["optimal_ipm", "optimal_inner_product_manipulation"];
        LabelFlip(LabelFlip) = "label_flip", aliases ["labelflip"];
    }
}
