//! Splitting a batch by partition: the transforms run on whole columns (Iceberg's own
//! transform functions), rows are grouped by the bytes of their partition tuple, and only one
//! row per group becomes an Iceberg value.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch, StructArray, UInt32Array};
use arrow_row::{RowConverter, SortField};
use iceberg::arrow::{PartitionValueCalculator, arrow_struct_to_literal};
use iceberg::spec::{Literal, PartitionSpec, PartitionSpecRef, SchemaRef, Struct, StructType};

use crate::error::{Error, Result};

/// Splits batches of a table's rows (in the table's current schema) by the table's default
/// partition spec.
pub(crate) struct Partitioner {
    spec: PartitionSpecRef,
    schema: SchemaRef,
    /// `None` when every field is `void` (every row is in the all-null partition).
    calculator: Option<PartitionValueCalculator>,
    partition_type: StructType,
    converter: RowConverter,
}

impl std::fmt::Debug for Partitioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partitioner")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl Partitioner {
    /// A partitioner for `spec` over `schema`, or `None` when the spec has no fields.
    pub(crate) fn new(spec: PartitionSpecRef, schema: SchemaRef) -> Result<Option<Self>> {
        if spec.fields().is_empty() {
            return Ok(None);
        }
        if spec.is_unpartitioned() {
            // Only void fields: one partition, all nulls.
            return Ok(Some(Self {
                partition_type: spec.partition_type(&schema)?,
                spec,
                schema,
                calculator: None,
                converter: RowConverter::new(Vec::new())?,
            }));
        }
        let calculator = PartitionValueCalculator::try_new(&spec, &schema)?;
        let partition_type = calculator.partition_type().clone();
        let arrow_schema::DataType::Struct(fields) = calculator.partition_arrow_type() else {
            return Err(Error::Config(
                "a partition type is not a struct".to_string(),
            ));
        };
        let converter = RowConverter::new(
            fields
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )?;
        Ok(Some(Self {
            spec,
            schema,
            calculator: Some(calculator),
            partition_type,
            converter,
        }))
    }

    /// The spec rows are split by.
    pub(crate) fn spec(&self) -> &PartitionSpec {
        &self.spec
    }

    /// The schema the spec is bound to.
    pub(crate) fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The rows of `batch` grouped by partition, each group with its tuple, in the order the
    /// partitions first appear.
    pub(crate) fn split(&self, batch: &RecordBatch) -> Result<Vec<(Struct, RecordBatch)>> {
        if batch.num_rows() == 0 {
            return Ok(Vec::new());
        }
        let Some(calculator) = &self.calculator else {
            let nulls = Struct::from_iter(self.spec.fields().iter().map(|_| None));
            return Ok(vec![(nulls, batch.clone())]);
        };
        let values = calculator.calculate(batch)?;
        let columns = values
            .as_any()
            .downcast_ref::<StructArray>()
            .ok_or_else(|| Error::Config("partition values are not a struct".to_string()))?
            .columns()
            .to_vec();
        let rows = self.converter.convert_columns(&columns)?;
        let mut groups: HashMap<arrow_row::Row<'_>, usize> = HashMap::new();
        let mut members: Vec<(usize, Vec<u32>)> = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            let group = *groups.entry(row).or_insert_with(|| {
                members.push((i, Vec::new()));
                members.len() - 1
            });
            members[group].1.push(i as u32);
        }
        let mut out = Vec::with_capacity(members.len());
        if members.len() == 1 {
            let tuple = self.tuple_at(&values, 0)?;
            out.push((tuple, batch.clone()));
            return Ok(out);
        }
        for (first, indices) in members {
            let tuple = self.tuple_at(&values, first)?;
            let indices = UInt32Array::from(indices);
            let rows = arrow_select::take::take_record_batch(batch, &indices)?;
            out.push((tuple, rows));
        }
        Ok(out)
    }

    /// The partition tuple of row `row` of the partition values of a batch.
    fn tuple_at(&self, values: &ArrayRef, row: usize) -> Result<Struct> {
        let one: ArrayRef = Arc::new(values.slice(row, 1));
        let literal = arrow_struct_to_literal(&one, &self.partition_type)?
            .into_iter()
            .next()
            .flatten();
        match literal {
            Some(Literal::Struct(s)) => Ok(s),
            _ => Err(Error::Config(
                "a partition tuple did not convert to Iceberg values".to_string(),
            )),
        }
    }
}
