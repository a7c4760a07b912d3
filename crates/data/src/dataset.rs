use serde::{Deserialize, Serialize};

/// Which dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// MNIST handwritten digits, 28×28 grey.
    Mnist,
    /// Fashion-MNIST, 28×28 grey, same format as MNIST.
    FashionMnist,
    /// CIFAR-10, 32×32 RGB.
    Cifar10,
    /// byzadam's procedural digits, 28×28 grey ([`crate::synthetic`]).
    Synthetic,
}

impl DatasetKind {
    /// The folder inside the data directory.
    pub fn folder(self) -> &'static str {
        match self {
            Self::Mnist => "mnist",
            Self::FashionMnist => "fashion-mnist",
            Self::Cifar10 => "cifar10",
            Self::Synthetic => "synthetic",
        }
    }

    /// Image shape.
    pub fn shape(self) -> ImageShape {
        match self {
            Self::Cifar10 => ImageShape {
                channels: 3,
                height: 32,
                width: 32,
            },
            _ => ImageShape {
                channels: 1,
                height: 28,
                width: 28,
            },
        }
    }

    /// The normalisation the field uses: pixels scaled to [0, 1], then `(x − mean) / std` per
    /// channel. MNIST: 0.1307, 0.3081 (PyTorch's MNIST example). Fashion-MNIST: 0.2860, 0.3530.
    /// CIFAR-10: the training set's per-channel mean and standard deviation. Each is checked
    /// against the real training set in this crate's tests.
    pub fn normalization(self) -> Normalization {
        match self {
            Self::Mnist | Self::Synthetic => Normalization {
                mean: vec![0.1307],
                std: vec![0.3081],
            },
            Self::FashionMnist => Normalization {
                mean: vec![0.2860],
                std: vec![0.3530],
            },
            Self::Cifar10 => Normalization {
                mean: vec![0.4914, 0.4822, 0.4465],
                std: vec![0.2470, 0.2435, 0.2616],
            },
        }
    }
}

/// Channels × height × width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageShape {
    /// Colour channels.
    pub channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

impl ImageShape {
    /// Values per image.
    pub fn len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// True for a zero-sized shape.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Per-channel `(x/255 − mean) / std`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// Per-channel mean of pixels scaled to [0, 1].
    pub mean: Vec<f32>,
    /// Per-channel standard deviation.
    pub std: Vec<f32>,
}

/// Images (bytes, channel planes, row-major) and their labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Which dataset these come from.
    pub kind: DatasetKind,
    /// Image shape.
    pub shape: ImageShape,
    /// Number of classes.
    pub classes: usize,
    /// `len × shape.len()` bytes.
    pub images: Vec<u8>,
    /// One label per image, in `0..classes`.
    pub labels: Vec<u8>,
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The bytes of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.shape.len();
        &self.images[i * n..(i + 1) * n]
    }

    /// Writes image `i`, normalised, into `out` (length `shape.len()`).
    pub fn normalized_into(&self, i: usize, norm: &Normalization, out: &mut [f32]) {
        let plane = self.shape.height * self.shape.width;
        for (c, (src, dst)) in self
            .image(i)
            .chunks(plane)
            .zip(out.chunks_mut(plane))
            .enumerate()
        {
            let (m, s) = (norm.mean[c], norm.std[c]);
            for (d, &x) in dst.iter_mut().zip(src) {
                *d = (x as f32 / 255.0 - m) / s;
            }
        }
    }

    /// Count of each label.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &y in &self.labels {
            counts[y as usize] += 1;
        }
        counts
    }
}

/// A training set and a test set.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// Training images.
    pub train: Dataset,
    /// Test images.
    pub test: Dataset,
}
