//! Proving from a file's statistics (exact min/max and null counts of its footer) that all of
//! its rows fall into one partition, and which.

use iceberg::spec::{DataFile, Datum, Literal, PartitionSpec, Schema, Struct, Transform};
use iceberg::transform::create_transform_function;

/// The file's one partition tuple, or why its statistics do not prove there is one (naming the
/// partition field and the values seen).
pub(crate) type SinglePartition = std::result::Result<Struct, String>;

/// The partition tuple all of `file`'s rows fall into under `spec`, proved from the file's
/// bounds and null counts: a transform that keeps order (identity, year, month, day, hour,
/// truncate) must give the same value for the minimum and the maximum; bucket needs the
/// minimum to equal the maximum; a column of only nulls is the null partition; void is always
/// null.
pub(crate) fn partition_from_stats(
    spec: &PartitionSpec,
    schema: &Schema,
    file: &DataFile,
) -> SinglePartition {
    let types = spec
        .partition_type(schema)
        .map_err(|e| e.message().to_string())?;
    let mut values = Vec::with_capacity(spec.fields().len());
    for (field, ty) in spec.fields().iter().zip(types.fields()) {
        if field.transform == Transform::Void {
            values.push(None);
            continue;
        }
        let column = schema.name_by_field_id(field.source_id).unwrap_or("?");
        let rows = file.record_count();
        let nulls = file.null_value_counts().get(&field.source_id).copied();
        let (lower, upper) = (
            file.lower_bounds().get(&field.source_id),
            file.upper_bounds().get(&field.source_id),
        );
        if rows == 0 || nulls == Some(rows) {
            values.push(None);
            continue;
        }
        let (Some(nulls), Some(lower), Some(upper)) = (nulls, lower, upper) else {
            return Err(format!(
                "its footer has no exact minimum, maximum and null count of column `{column}` (partition field `{}`)",
                field.name
            ));
        };
        let function =
            create_transform_function(&field.transform).map_err(|e| e.message().to_string())?;
        let apply = |d: &Datum| -> std::result::Result<Option<Literal>, String> {
            Ok(function
                .transform_literal(d)
                .map_err(|e| e.message().to_string())?
                .map(|v| Literal::Primitive(v.literal().clone())))
        };
        let human =
            |v: &Option<Literal>| field.transform.to_human_string(&ty.field_type, v.as_ref());
        let (low, high) = (apply(lower)?, apply(upper)?);
        if nulls > 0 {
            return Err(format!(
                "partition field `{}` has null and {} (column `{column}` holds nulls and values)",
                field.name,
                human(&low)
            ));
        }
        if low != high {
            return Err(format!(
                "partition field `{}` has {} and {}",
                field.name,
                human(&low),
                human(&high)
            ));
        }
        if !field.transform.preserves_order() && lower != upper {
            return Err(format!(
                "partition field `{}`: column `{column}` ranges from {lower} to {upper}, so its rows may fall into several buckets",
                field.name
            ));
        }
        values.push(low);
    }
    Ok(Struct::from_iter(values))
}
