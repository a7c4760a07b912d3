//! NumPy `.npy` arrays of float32 or float64 read as float32, from bytes that may be hostile:
//! every error says what is wrong, nothing panics, and nothing is allocated past what the
//! bytes can hold. The matrix files of `byzadam aggregate`/`attack` and a run's `init` vector
//! are read with it.

/// An array read from an `.npy` file: its shape and its values in C (row-major) order.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// The dimensions.
    pub shape: Vec<usize>,
    /// The values, row-major whatever the file's order.
    pub data: Vec<f32>,
}

/// `x` as float32, or why not: a finite value past float32's range (±3.4e38) would silently
/// become ±∞, so it is refused (byzadam computes in float32).
pub fn narrow(x: f64) -> Result<f32, String> {
    let y = x as f32;
    if x.is_finite() && y.is_infinite() {
        Err(format!(
            "{x:e} is outside float32's range (±3.4e38; byzadam computes in float32)"
        ))
    } else {
        Ok(y)
    }
}

/// The shape an `.npy` header claims, read before npyz sees the file: npyz multiplies the
/// dimensions without checking for overflow (a panic in a debug build, a wrapped count in a
/// release one), so a shape whose element count (its non-zero dimensions' product) exceeds
/// the file's bytes is refused here.
/// `None` where the header cannot be read this way (npyz then reports what is wrong).
fn claimed_elements(bytes: &[u8]) -> Option<(Vec<u128>, u128)> {
    let rest = bytes.strip_prefix(b"\x93NUMPY")?;
    let (&major, rest) = rest.split_first()?;
    let rest = rest.get(1..)?;
    let (len, rest) = match major {
        1 => (
            u16::from_le_bytes([*rest.first()?, *rest.get(1)?]) as usize,
            &rest[2..],
        ),
        _ => (
            u32::from_le_bytes([*rest.first()?, *rest.get(1)?, *rest.get(2)?, *rest.get(3)?])
                as usize,
            rest.get(4..)?,
        ),
    };
    let header = std::str::from_utf8(rest.get(..len.min(rest.len()))?).ok()?;
    let at = header
        .find("'shape'")
        .or_else(|| header.find("\"shape\""))?;
    let open = at + header[at..].find('(')?;
    let close = open + header[open..].find(')')?;
    let dims: Option<Vec<u128>> = header[open + 1..close]
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.parse::<u128>().ok())
        .collect();
    let dims = dims?;
    // Zero dimensions left out: npyz's strides multiply the others all the same.
    let count = dims
        .iter()
        .filter(|&&d| d != 0)
        .fold(1u128, |a, &d| a.saturating_mul(d));
    Some((dims, count))
}

/// Parses a whole `.npy` file's bytes: a float32 or float64 array (float64 narrowed to
/// float32, a finite value past float32's range refused naming its position) of one or two
/// dimensions in either order, or of any number of dimensions in C order.
pub fn parse(bytes: &[u8]) -> Result<Array, String> {
    if let Some((dims, count)) = claimed_elements(bytes) {
        if count > bytes.len() as u128 {
            return Err(format!(
                "truncated: the header's shape {dims:?} claims {count} values, more than the \
                 file's {} bytes can hold",
                bytes.len()
            ));
        }
    }
    let npy = npyz::NpyFile::new(bytes).map_err(|e| format!("not a valid .npy file: {e}"))?;
    let shape: Vec<u64> = npy.shape().to_vec();
    let descr = npy.dtype().descr();
    let width: u128 = match descr.trim_matches('\'') {
        "<f4" | ">f4" => 4,
        "<f8" | ">f8" => 8,
        other => return Err(format!("unsupported dtype {other}: use float32 or float64")),
    };
    // The header's shape is checked against the bytes that follow it before anything is
    // allocated: a header claiming 10^16 values in a 200-byte file is "truncated", not an
    // allocation of 40 petabytes.
    let claimed = shape
        .iter()
        .try_fold(width, |a, &d| a.checked_mul(d as u128))
        .unwrap_or(u128::MAX);
    if claimed > bytes.len() as u128 {
        return Err(format!(
            "truncated: the header's shape {shape:?} needs {claimed} bytes of data, the file \
             has {} in all",
            bytes.len()
        ));
    }
    let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    let count: usize = shape.iter().product();
    let fortran = npy.order() == npyz::Order::Fortran && shape.len() > 1;
    if fortran && shape.len() > 2 {
        return Err(format!(
            "a Fortran-order array of {} dimensions: save it in C order",
            shape.len()
        ));
    }
    let (rows, dim) = match shape[..] {
        [r, d] => (r, d),
        _ => (1, count),
    };
    let truncated = |e: std::io::Error| format!("truncated or unreadable data: {e}");
    let data: Vec<f32> = if width == 4 {
        npy.into_vec::<f32>().map_err(truncated)?
    } else {
        let wide = npy.into_vec::<f64>().map_err(truncated)?;
        let mut out = Vec::with_capacity(wide.len());
        for (k, &x) in wide.iter().enumerate() {
            let (i, j) = if fortran {
                (k % rows.max(1), k / rows.max(1))
            } else {
                (k / dim.max(1), k % dim.max(1))
            };
            out.push(narrow(x).map_err(|e| {
                if shape.len() == 2 {
                    format!("row {}, column {}: {e}", i + 1, j + 1)
                } else {
                    format!("value {}: {e}", k + 1)
                }
            })?);
        }
        out
    };
    if data.len() != count {
        return Err(format!(
            "truncated: {} values for shape {shape:?}",
            data.len()
        ));
    }
    if fortran {
        let mut c = vec![0.0; data.len()];
        for i in 0..rows {
            for j in 0..dim {
                c[i * dim + j] = data[j * rows + i];
            }
        }
        return Ok(Array { shape, data: c });
    }
    Ok(Array { shape, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::npy_bytes as npy;

    fn f32s(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn one_and_two_dimensions_in_either_order() {
        let a = parse(&npy("<f4", false, "3,", &f32s(&[1.0, 2.0, 3.0]))).unwrap();
        assert_eq!((a.shape, a.data), (vec![3], vec![1.0, 2.0, 3.0]));
        // Fortran order: columns first; read back row-major.
        let f = parse(&npy("<f4", true, "2, 3", &f32s(&[1., 4., 2., 5., 3., 6.]))).unwrap();
        assert_eq!(
            (f.shape, f.data),
            (vec![2, 3], vec![1., 2., 3., 4., 5., 6.])
        );
        let wide: Vec<u8> = [0.5f64, -2.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert_eq!(
            parse(&npy("<f8", false, "2,", &wide)).unwrap().data,
            [0.5, -2.0]
        );
    }

    #[test]
    fn hostile_headers_are_errors() {
        let e = parse(&npy("<f4", false, "1000000000000000,", &f32s(&[1.0]))).unwrap_err();
        assert!(e.starts_with("truncated"), "{e}");
        let e = parse(&npy("<i4", false, "1,", &[0; 4])).unwrap_err();
        assert!(e.contains("unsupported dtype"), "{e}");
        let big: Vec<u8> = 1e300f64.to_le_bytes().to_vec();
        let e = parse(&npy("<f8", false, "1,", &big)).unwrap_err();
        assert!(
            e.contains("value 1") && e.contains("float32's range"),
            "{e}"
        );
        assert!(parse(b"not an npy file").is_err());
        assert!(parse(&npy("<f4", false, "2,", &f32s(&[1.0]))).is_err());
    }
}
