//! The messages of ONNX's `onnx.proto` that the exporter writes, as `prost` messages.
//!
//! Transcribed from `onnx/onnx.proto` of ONNX 1.16.2 (`IR_VERSION = 10`, the IR of opset 21),
//! `syntax = "proto2"`, with its field numbers and types; only the fields the exporter sets
//! are declared (a decoder skips the others). proto2 semantics are kept where they change
//! the bytes: `optional` scalars are `Option`s, written whenever set (the empty default
//! domain of an opset import included), and `repeated int64` fields are not packed
//! (`packed = "false"`: onnx.proto gives `[packed = true]` only to the `*_data` fields of
//! `TensorProto`, none of which the exporter uses).
//!
//! Written by hand rather than generated with `prost-build`, which would need `protoc` and the
//! whole of onnx.proto at build time for a few dozen fields; a test decodes a model written by
//! the `onnx` Python package with these messages and encodes it back to the same bytes.

/// `onnx.ModelProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelProto {
    /// The IR version (`optional int64 ir_version = 1`).
    #[prost(int64, optional, tag = "1")]
    pub ir_version: Option<i64>,
    /// `repeated OperatorSetIdProto opset_import = 8`.
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
    /// `optional string producer_name = 2`.
    #[prost(string, optional, tag = "2")]
    pub producer_name: Option<String>,
    /// `optional string producer_version = 3`.
    #[prost(string, optional, tag = "3")]
    pub producer_version: Option<String>,
    /// `optional string doc_string = 6`.
    #[prost(string, optional, tag = "6")]
    pub doc_string: Option<String>,
    /// `optional GraphProto graph = 7`.
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
}

/// `onnx.OperatorSetIdProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OperatorSetIdProto {
    /// `optional string domain = 1`; empty for the default (ai.onnx) operator set.
    #[prost(string, optional, tag = "1")]
    pub domain: Option<String>,
    /// `optional int64 version = 2`.
    #[prost(int64, optional, tag = "2")]
    pub version: Option<i64>,
}

/// `onnx.GraphProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GraphProto {
    /// `repeated NodeProto node = 1`, in topological order.
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    /// `optional string name = 2`.
    #[prost(string, optional, tag = "2")]
    pub name: Option<String>,
    /// `repeated TensorProto initializer = 5`.
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    /// `repeated ValueInfoProto input = 11`.
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    /// `repeated ValueInfoProto output = 12`.
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
}

/// `onnx.NodeProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeProto {
    /// `repeated string input = 1`.
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    /// `repeated string output = 2`.
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    /// `optional string name = 3`.
    #[prost(string, optional, tag = "3")]
    pub name: Option<String>,
    /// `optional string op_type = 4`.
    #[prost(string, optional, tag = "4")]
    pub op_type: Option<String>,
    /// `repeated AttributeProto attribute = 5`.
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
}

/// `onnx.AttributeProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AttributeProto {
    /// `optional string name = 1`.
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    /// `optional AttributeType type = 20`: which value field below is in use.
    #[prost(enumeration = "AttributeType", optional, tag = "20")]
    pub r#type: Option<i32>,
    /// `optional float f = 2`.
    #[prost(float, optional, tag = "2")]
    pub f: Option<f32>,
    /// `optional int64 i = 3`.
    #[prost(int64, optional, tag = "3")]
    pub i: Option<i64>,
    /// `repeated int64 ints = 8` (proto2: not packed).
    #[prost(int64, repeated, packed = "false", tag = "8")]
    pub ints: Vec<i64>,
}

/// `onnx.AttributeProto.AttributeType`, the types the exporter uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum AttributeType {
    /// `UNDEFINED = 0`.
    Undefined = 0,
    /// `FLOAT = 1`.
    Float = 1,
    /// `INT = 2`.
    Int = 2,
    /// `INTS = 7`.
    Ints = 7,
}

/// `onnx.TensorProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    /// `repeated int64 dims = 1` (proto2: not packed).
    #[prost(int64, repeated, packed = "false", tag = "1")]
    pub dims: Vec<i64>,
    /// `optional int32 data_type = 2`, a [`DataType`].
    #[prost(int32, optional, tag = "2")]
    pub data_type: Option<i32>,
    /// `optional string name = 8`.
    #[prost(string, optional, tag = "8")]
    pub name: Option<String>,
    /// `optional bytes raw_data = 9`: the elements, fixed width, little-endian, row-major.
    #[prost(bytes = "vec", optional, tag = "9")]
    pub raw_data: Option<Vec<u8>>,
}

/// `onnx.TensorProto.DataType`, the types the exporter uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum DataType {
    /// `UNDEFINED = 0`.
    Undefined = 0,
    /// `FLOAT = 1`.
    Float = 1,
    /// `UINT8 = 2`.
    Uint8 = 2,
    /// `INT8 = 3`.
    Int8 = 3,
    /// `UINT16 = 4`.
    Uint16 = 4,
    /// `INT16 = 5`.
    Int16 = 5,
    /// `FLOAT16 = 10`.
    Float16 = 10,
    /// `BFLOAT16 = 16`.
    Bfloat16 = 16,
    /// `FLOAT8E4M3FN = 17`.
    Float8e4m3fn = 17,
    /// `FLOAT8E5M2 = 19`.
    Float8e5m2 = 19,
    /// `INT4 = 22`.
    Int4 = 22,
}

/// `onnx.ValueInfoProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueInfoProto {
    /// `optional string name = 1`.
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    /// `optional TypeProto type = 2`.
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
}

/// `onnx.TypeProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeProto {
    /// `oneof value`, of which the exporter uses `Tensor tensor_type = 1`.
    #[prost(oneof = "TypeValue", tags = "1")]
    pub value: Option<TypeValue>,
}

/// `onnx.TypeProto`'s `oneof value`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum TypeValue {
    /// `Tensor tensor_type = 1`.
    #[prost(message, tag = "1")]
    TensorType(TensorTypeProto),
}

/// `onnx.TypeProto.Tensor`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorTypeProto {
    /// `optional int32 elem_type = 1`, a [`DataType`].
    #[prost(int32, optional, tag = "1")]
    pub elem_type: Option<i32>,
    /// `optional TensorShapeProto shape = 2`.
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShapeProto>,
}

/// `onnx.TensorShapeProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShapeProto {
    /// `repeated Dimension dim = 1`.
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<Dimension>,
}

/// `onnx.TensorShapeProto.Dimension`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Dimension {
    /// `oneof value { int64 dim_value = 1; string dim_param = 2; }`.
    #[prost(oneof = "DimensionValue", tags = "1, 2")]
    pub value: Option<DimensionValue>,
}

/// `onnx.TensorShapeProto.Dimension`'s `oneof value`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum DimensionValue {
    /// `int64 dim_value = 1`: a fixed size.
    #[prost(int64, tag = "1")]
    DimValue(i64),
    /// `string dim_param = 2`: a named, free size (`batch`).
    #[prost(string, tag = "2")]
    DimParam(String),
}
