import Foundation
import Tensor

/// A tensor as `torch._utils._rebuild_tensor_v2` describes it: a view (offset, shape, strides, in
/// elements) of a storage record `data/<storageKey>` in the checkpoint archive.
public struct TorchTensorRef: Sendable, Hashable {
  public var storageKey: String
  public var dtype: DType
  /// Elements in the whole storage, as the pickle declares it.
  public var storageElements: Int
  public var offset: Int
  public var shape: [Int]
  public var strides: [Int]

  /// Whether the view is the row-major layout starting at `offset` (dimensions of extent 1 ignored).
  public var isContiguous: Bool {
    var expected = 1
    for i in stride(from: shape.count - 1, through: 0, by: -1) where shape[i] != 1 {
      if shape[i] == 0 { return true }
      if strides[i] != expected { return false }
      expected *= shape[i]
    }
    return true
  }
}

/// The value a restricted unpickler produces: plain data and tensor references, nothing callable.
public indirect enum PickleValue: Sendable {
  case none
  case bool(Bool)
  case int(Int)
  /// An integer wider than 64 bits, as little-endian two's-complement bytes.
  case bigInt([UInt8])
  case float(Double)
  case string(String)
  case bytes([UInt8])
  case tuple([PickleValue])
  case list([PickleValue])
  /// Dict and OrderedDict, in insertion order.
  case dict([PickleDictEntry])
  case tensor(TorchTensorRef)
  /// A torch dtype object (`torch.float16`), by name.
  case dtype(String)
  /// An allowed global not yet called (a class or function named by the pickle).
  case global(String)
  /// An object of an inert data class (numpy arrays in SAT's training state), kept as its class name:
  /// never constructed, its state never read.
  case opaque(String)

  public var typeName: String {
    switch self {
    case .none: return "None"
    case .bool: return "bool"
    case .int, .bigInt: return "int"
    case .float: return "float"
    case .string: return "str"
    case .bytes: return "bytes"
    case .tuple: return "tuple"
    case .list: return "list"
    case .dict: return "dict"
    case .tensor: return "tensor"
    case .dtype: return "dtype"
    case .global(let n): return n
    case .opaque(let n): return n
    }
  }
}

public struct PickleDictEntry: Sendable {
  public var key: PickleValue
  public var value: PickleValue
}

/// A pickle reader that understands the opcodes of protocols 2–5 that state dicts use and calls
/// nothing: the few globals a `torch.save`d state dict needs are interpreted by this code, and any
/// other global is refused, naming it, the moment it is read.
///
/// The allow-list follows PyTorch's own weights-only unpickler (`torch/_weights_only_unpickler.py`
/// `_get_allowed_globals`): OrderedDict/Counter, the `torch._utils._rebuild_*` functions, the storage
/// classes, dtypes, `torch.Size`, `torch.device`, `_codecs.encode` (how protocol 2 stores bytes) and
/// `builtins.set/frozenset/bytearray`. Tensor kinds CogFlow cannot hold (quantized, sparse, meta,
/// subclasses) are allowed by torch but answered here with `ModelIOError.unsupported`.
public struct RestrictedUnpickler {
  /// Limits that keep hostile input from exhausting memory or the stack.
  public var maxDepth = 100
  public var maxNodes = 4_000_000

  let path: String

  public init(path: String) { self.path = path }

  static let storageTypes: [String: DType] = [
    "torch.DoubleStorage": .f64, "torch.FloatStorage": .f32, "torch.HalfStorage": .f16,
    "torch.BFloat16Storage": .bf16, "torch.LongStorage": .i64, "torch.IntStorage": .i32,
    "torch.ShortStorage": .i16, "torch.CharStorage": .i8, "torch.ByteStorage": .u8,
    "torch.BoolStorage": .bool, "torch.UntypedStorage": .u8,
  ]
  /// Storage classes torch allows whose element types CogFlow does not hold.
  static let otherStorageTypes: Set<String> = [
    "torch.ComplexDoubleStorage", "torch.ComplexFloatStorage", "torch.QUInt8Storage", "torch.QInt8Storage",
    "torch.QInt32Storage", "torch.QUInt4x2Storage", "torch.QUInt2x4Storage", "torch.storage.TypedStorage",
    "torch.storage.UntypedStorage", "torch.ComplexHalfStorage",
  ]
  static let dtypes: [String: DType] = [
    "torch.float64": .f64, "torch.float32": .f32, "torch.float16": .f16, "torch.bfloat16": .bf16,
    "torch.int64": .i64, "torch.int32": .i32, "torch.int16": .i16, "torch.int8": .i8, "torch.uint8": .u8,
    "torch.bool": .bool,
  ]
  static let functions: Set<String> = [
    "collections.OrderedDict", "collections.Counter", "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_tensor_v3", "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state",
    "torch._tensor._rebuild_from_type_v2", "torch.Size", "torch.device", "_codecs.encode", "builtins.set",
    "builtins.frozenset", "builtins.bytearray", "torch.nn.parameter.Parameter", "torch.Tensor",
    "torch.serialization._get_layout",
  ]
  /// Allowed by torch for tensors CogFlow cannot represent: refused as unsupported, not as unsafe.
  static let unsupportedFunctions: Set<String> = [
    "torch._utils._rebuild_qtensor", "torch._utils._rebuild_sparse_tensor",
    "torch._utils._rebuild_meta_tensor_no_storage", "torch._utils._rebuild_wrapper_subclass",
    "torch._utils._rebuild_device_tensor_from_numpy", "torch._utils._rebuild_device_tensor_from_cpu_tensor",
    "torch._utils._rebuild_nested_tensor", "builtins.complex",
  ]

  /// Data classes SAT's DeepSpeed checkpoints hold outside the state dict: `save_ds_checkpoint` stores
  /// `np.random.get_state()` (`THUDM/SwissArmyTransformer:sat/training/model_io.py`). Their objects
  /// become `.opaque` placeholders; numpy is never asked to build anything.
  static let inertGlobals: Set<String> = [
    "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct", "numpy.ndarray", "numpy.dtype",
    "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar",
  ]

  static func isAllowed(_ name: String) -> Bool {
    inertGlobals.contains(name) || storageTypes[name] != nil || otherStorageTypes.contains(name) || dtypes[name] != nil
      || functions.contains(name)
      || unsupportedFunctions.contains(name) || otherDTypeNames.contains(name)
  }
  /// dtype objects torch pickles by name that CogFlow has no storage type for.
  static let otherDTypeNames: Set<String> = [
    "torch.complex32", "torch.complex64", "torch.complex128", "torch.uint16", "torch.uint32", "torch.uint64",
    "torch.float8_e4m3fn", "torch.float8_e5m2", "torch.float8_e4m3fnuz", "torch.float8_e5m2fnuz",
    "torch.per_tensor_affine", "torch.per_channel_affine", "torch.per_tensor_symmetric",
    "torch.per_channel_symmetric", "torch.per_channel_affine_float_qparams",
  ]

  /// Unpickles `bytes` into a value tree. Never imports, never calls code.
  public func load(_ bytes: UnsafeRawBufferPointer) throws -> PickleValue {
    var machine = Machine(path: path, input: bytes)
    defer { machine.tearDown() }
    let root = try machine.run()
    var budget = maxNodes
    var onPath = Set<ObjectIdentifier>()
    return try machine.freeze(root, depth: 0, maxDepth: maxDepth, budget: &budget, onPath: &onPath)
  }
}

// MARK: - The machine

/// Mutable containers while unpickling: pickles fill lists and dicts after they are memoized, so
/// they need reference semantics here; `freeze` turns them into values at the end.
private final class Box {
  enum Kind { case list, dict, set }
  let kind: Kind
  var items: [Item] = []
  var keys: [Item] = []
  init(_ kind: Kind) { self.kind = kind }
}

private enum Item {
  case value(PickleValue)
  case box(Box)
  /// Tuples are immutable values; `depth` counts nested tuples so that a long chain is refused
  /// before its release could recurse off the stack.
  case tuple([Item], depth: Int)
  case storage(dtype: DType, key: String, elements: Int)
}

private struct Machine {
  let path: String
  let input: UnsafeRawBufferPointer
  var pos = 0
  var stack: [Item] = []
  var marks: [Int] = []
  var memo: [Int: Item] = [:]
  var boxes: [Box] = []

  init(path: String, input: UnsafeRawBufferPointer) {
    self.path = path
    self.input = input
  }

  func bad(_ reason: String) -> ModelIOError {
    .malformed(path: path, tensor: nil, reason: "pickle: \(reason)")
  }

  /// Empties every container so that no deep or cyclic chain is left for recursive release.
  mutating func tearDown() {
    for b in boxes {
      b.items.removeAll()
      b.keys.removeAll()
    }
    stack.removeAll()
    memo.removeAll()
    boxes.removeAll()
  }

  mutating func newBox(_ kind: Box.Kind) -> Box {
    let b = Box(kind)
    boxes.append(b)
    return b
  }

  // MARK: reading

  mutating func byte() throws -> UInt8 {
    guard pos < input.count else { throw bad("ends early at byte \(pos) (truncated)") }
    defer { pos += 1 }
    return input[pos]
  }

  mutating func take(_ n: Int) throws -> UnsafeRawBufferPointer {
    guard n >= 0, n <= input.count - pos else {
      throw bad("a \(n)-byte field at byte \(pos) runs past the end (\(input.count) bytes)")
    }
    defer { pos += n }
    return UnsafeRawBufferPointer(rebasing: input[pos..<(pos + n)])
  }

  mutating func uint(_ n: Int) throws -> UInt64 {
    let b = try take(n)
    var v: UInt64 = 0
    for i in stride(from: n - 1, through: 0, by: -1) { v = v << 8 | UInt64(b[i]) }
    return v
  }

  mutating func length(_ n: Int) throws -> Int {
    let v = try uint(n)
    guard v <= UInt64(input.count - pos) else {
      throw bad("length \(v) at byte \(pos - n) exceeds the remaining \(input.count - pos) bytes")
    }
    return Int(v)
  }

  mutating func line() throws -> String {
    guard let nl = input[pos...].firstIndex(of: 0x0A) else { throw bad("unterminated text field at byte \(pos)") }
    let s = String(decoding: input[pos..<nl], as: UTF8.self)
    pos = nl + 1
    return s
  }

  mutating func utf8(_ n: Int) throws -> String {
    let b = try take(n)
    guard let s = String(validating: b, as: UTF8.self) else { throw bad("string at byte \(pos - n) is not UTF-8") }
    return s
  }

  /// Pops one item; like Python's unpickler, never below the innermost mark.
  mutating func pop() throws -> Item {
    guard stack.count > (marks.last ?? 0), let top = stack.popLast() else {
      throw bad("stack underflow at byte \(pos)")
    }
    return top
  }

  mutating func popMark() throws -> [Item] {
    guard let m = marks.popLast(), m <= stack.count else { throw bad("no mark at byte \(pos)") }
    let items = Array(stack[m...])
    stack.removeSubrange(m...)
    return items
  }

  mutating func push(_ i: Item) { stack.append(i) }

  // MARK: opcodes

  mutating func run() throws -> Item {
    while true {
      let op = try byte()
      switch op {
      case 0x80: _ = try byte()  // PROTO
      case 0x95: _ = try take(8)  // FRAME: framing is only a read-ahead hint
      case 0x2E:  // STOP
        guard stack.count == 1, marks.isEmpty else { throw bad("stack holds \(stack.count) items at STOP") }
        return try pop()
      case 0x28:  // MARK
        guard marks.count < 100_000 else { throw bad("too many open marks") }
        marks.append(stack.count)
      case 0x30: _ = try pop()  // POP
      case 0x31: _ = try popMark()  // POP_MARK
      case 0x32:  // DUP
        guard stack.count > (marks.last ?? 0), let top = stack.last else { throw bad("DUP on an empty stack") }
        push(top)
      case 0x4E: push(.value(.none))
      case 0x88: push(.value(.bool(true)))
      case 0x89: push(.value(.bool(false)))
      case 0x4A: push(.value(.int(Int(Int32(bitPattern: UInt32(try uint(4)))))))  // BININT
      case 0x4B: push(.value(.int(Int(try byte()))))  // BININT1
      case 0x4D: push(.value(.int(Int(try uint(2)))))  // BININT2
      case 0x8A: push(try long(Int(try byte())))  // LONG1
      case 0x8B: push(try long(try length(4)))  // LONG4
      case 0x49:  // INT (text): protocol 0 and "I01"/"I00" booleans
        let s = try line()
        if s == "01" || s == "00" {
          push(.value(.bool(s == "01")))
        } else if let v = Int(s) {
          push(.value(.int(v)))
        } else {
          throw bad("bad INT '\(s.prefix(40))'")
        }
      case 0x47: push(.value(.float(Double(bitPattern: try uint(8).byteSwapped))))  // BINFLOAT (big-endian)
      case 0x58: push(.value(.string(try utf8(try length(4)))))  // BINUNICODE
      case 0x8C: push(.value(.string(try utf8(try length(1)))))  // SHORT_BINUNICODE
      case 0x8D: push(.value(.string(try utf8(try length(8)))))  // BINUNICODE8
      case 0x55, 0x54:  // SHORT_BINSTRING, BINSTRING: Python 2 str, read as Latin-1 like torch does
        let b = try take(try length(op == 0x55 ? 1 : 4))
        push(.value(.string(String(b.map { Character(Unicode.Scalar($0)) }))))
      case 0x43: push(.value(.bytes(Array(try take(try length(1))))))  // SHORT_BINBYTES
      case 0x42: push(.value(.bytes(Array(try take(try length(4))))))  // BINBYTES
      case 0x8E, 0x96: push(.value(.bytes(Array(try take(try length(8))))))  // BINBYTES8, BYTEARRAY8
      case 0x29: push(.tuple([], depth: 1))  // EMPTY_TUPLE
      case 0x74: push(try tuple(try popMark()))  // TUPLE
      case 0x85: push(try tuple([try pop()]))
      case 0x86:
        let b = try pop()
        let a = try pop()
        push(try tuple([a, b]))
      case 0x87:
        let c = try pop()
        let b = try pop()
        let a = try pop()
        push(try tuple([a, b, c]))
      case 0x5D: push(.box(newBox(.list)))  // EMPTY_LIST
      case 0x6C:  // LIST
        let b = newBox(.list)
        b.items = try popMark()
        push(.box(b))
      case 0x61:  // APPEND
        let v = try pop()
        try container(.list, "APPEND").items.append(v)
      case 0x65:  // APPENDS
        let vs = try popMark()
        try container(.list, "APPENDS").items.append(contentsOf: vs)
      case 0x7D: push(.box(newBox(.dict)))  // EMPTY_DICT
      case 0x64:  // DICT
        let b = newBox(.dict)
        try setItems(b, try popMark())
        push(.box(b))
      case 0x73:  // SETITEM
        let v = try pop()
        let k = try pop()
        try setItems(try container(.dict, "SETITEM"), [k, v])
      case 0x75:  // SETITEMS
        let kv = try popMark()
        try setItems(try container(.dict, "SETITEMS"), kv)
      case 0x8F: push(.box(newBox(.set)))  // EMPTY_SET
      case 0x90:  // ADDITEMS
        let vs = try popMark()
        try container(.set, "ADDITEMS").items.append(contentsOf: vs)
      case 0x91:  // FROZENSET
        let b = newBox(.set)
        b.items = try popMark()
        push(.box(b))
      case 0x63:  // GLOBAL "module\nname\n"
        let module = try line()
        let name = try line()
        push(try global(module, name))
      case 0x93:  // STACK_GLOBAL
        let n = try pop()
        let m = try pop()
        guard case .value(.string(let name)) = n, case .value(.string(let module)) = m else {
          throw bad("STACK_GLOBAL needs two strings")
        }
        push(try global(module, name))
      case 0x52:  // REDUCE
        let args = try pop()
        let fn = try pop()
        push(try call(fn, args))
      case 0x81:  // NEWOBJ: cls.__new__(cls, *args), interpreted like a call for allowed classes
        let args = try pop()
        let cls = try pop()
        push(try call(cls, args))
      case 0x62:  // BUILD: sets state on the object below. The allowed objects carry no state we use
        // (an OrderedDict state dict's `_metadata` attribute arrives here), so the state is dropped.
        _ = try pop()
        guard stack.count > (marks.last ?? 0) else { throw bad("BUILD on an empty stack") }
      case 0x51:  // BINPERSID
        push(try persistentLoad(try pop()))
      case 0x50:  // PERSID (text): not what torch writes
        throw bad("text persistent ids are not supported")
      case 0x71: try put(Int(try byte()))  // BINPUT
      case 0x72: try put(Int(try uint(4)))  // LONG_BINPUT
      case 0x94: try put(memo.count)  // MEMOIZE
      case 0x70:  // PUT (text)
        guard let i = Int(try line()), i >= 0 else { throw bad("bad PUT index") }
        try put(i)
      case 0x68: try get(Int(try byte()))  // BINGET
      case 0x6A: try get(Int(try uint(4)))  // LONG_BINGET
      case 0x67:  // GET (text)
        guard let i = Int(try line()) else { throw bad("bad GET index") }
        try get(i)
      case 0x69:  // INST: module and class as text, then a call
        let module = try line()
        let name = try line()
        throw ModelIOError.refusedGlobal(path: path, name: qualified(module, name))
      case 0x6F, 0x92:  // OBJ, NEWOBJ_EX: build arbitrary objects
        throw bad("opcode 0x\(String(op, radix: 16)) (object construction) is not allowed in a state dict")
      case 0x82, 0x83, 0x84:  // EXT1/2/4: the copyreg extension registry names globals indirectly
        throw bad("extension-registry opcode 0x\(String(op, radix: 16)) is not allowed")
      default:
        throw bad("unknown or disallowed opcode 0x\(String(op, radix: 16)) at byte \(pos - 1)")
      }
    }
  }

  func tuple(_ items: [Item]) throws -> Item {
    var d = 0
    for case .tuple(_, let cd) in items { d = max(d, cd) }
    guard d < 1000 else { throw bad("tuples nested deeper than 1000 levels") }
    return .tuple(items, depth: d + 1)
  }

  mutating func long(_ n: Int) throws -> Item {
    let b = try take(n)
    if n == 0 { return .value(.int(0)) }
    if n <= 8 {
      var v: UInt64 = 0
      for i in stride(from: n - 1, through: 0, by: -1) { v = v << 8 | UInt64(b[i]) }
      if n < 8, b[n - 1] & 0x80 != 0 { v |= ~UInt64(0) << UInt64(8 * n) }  // sign-extend
      return .value(.int(Int(Int64(bitPattern: v))))
    }
    return .value(.bigInt(Array(b)))
  }

  mutating func put(_ i: Int) throws {
    guard stack.count > (marks.last ?? 0), let top = stack.last else { throw bad("memo store on an empty stack") }
    memo[i] = top
  }

  mutating func get(_ i: Int) throws {
    guard let v = memo[i] else { throw bad("memo entry \(i) read before it was stored") }
    push(v)
  }

  func container(_ kind: Box.Kind, _ op: String) throws -> Box {
    guard stack.count > (marks.last ?? 0), case .box(let b) = stack.last, b.kind == kind else {
      throw bad("\(op) target is not a \(kind)")
    }
    return b
  }

  func setItems(_ b: Box, _ kv: [Item]) throws {
    guard kv.count % 2 == 0 else { throw bad("odd number of dict items") }
    for i in stride(from: 0, to: kv.count, by: 2) {
      b.keys.append(kv[i])
      b.items.append(kv[i + 1])
    }
  }

  func qualified(_ module: String, _ name: String) -> String {
    // Python 2 module names, as pickle's fix_imports maps them.
    let m = module == "__builtin__" ? "builtins" : module == "copy_reg" ? "copyreg" : module
    return m + "." + name
  }

  func global(_ module: String, _ name: String) throws -> Item {
    let full = qualified(module, name)
    guard RestrictedUnpickler.isAllowed(full) else { throw ModelIOError.refusedGlobal(path: path, name: full) }
    if RestrictedUnpickler.dtypes[full] != nil || RestrictedUnpickler.otherDTypeNames.contains(full) {
      return .value(.dtype(full))
    }
    return .value(.global(full))
  }

  func tupleItems(_ args: Item, _ fn: String) throws -> [Item] {
    guard case .tuple(let a, _) = args else { throw bad("\(fn) called with non-tuple arguments") }
    return a
  }

  func int(_ i: Item, _ what: String) throws -> Int {
    switch i {
    case .value(.int(let v)): return v
    case .value(.bool(let b)): return b ? 1 : 0
    default: throw bad("\(what) is not an integer")
    }
  }

  func ints(_ i: Item, _ what: String) throws -> [Int] {
    switch i {
    case .tuple(let a, _): return try a.map { try int($0, what) }
    case .box(let b) where b.kind == .list: return try b.items.map { try int($0, what) }
    default: throw bad("\(what) is not a tuple of integers")
    }
  }

  mutating func call(_ fn: Item, _ args: Item) throws -> Item {
    guard case .value(.global(let name)) = fn else {
      throw bad("call of a non-global (\(describe(fn)))")
    }
    let a = try tupleItems(args, name)
    if RestrictedUnpickler.inertGlobals.contains(name) { return .value(.opaque(name)) }
    if RestrictedUnpickler.unsupportedFunctions.contains(name) {
      throw ModelIOError.unsupported(path: path, tensor: nil, reason: "pickled object built by \(name)")
    }
    switch name {
    case "collections.OrderedDict", "collections.Counter":
      let b = newBox(.dict)
      if let first = a.first {
        // OrderedDict([(k, v), ...]) form.
        let pairs: [Item]
        switch first {
        case .box(let l) where l.kind == .list: pairs = l.items
        case .tuple(let t, _): pairs = t
        case .box(let d) where d.kind == .dict:
          b.keys = d.keys
          b.items = d.items
          return .box(b)
        default: throw bad("\(name) argument is not a list of pairs")
        }
        for p in pairs {
          guard case .tuple(let kv, _) = p, kv.count == 2 else { throw bad("\(name) item is not a pair") }
          b.keys.append(kv[0])
          b.items.append(kv[1])
        }
      }
      return .box(b)
    case "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor_v3":
      guard a.count >= 4 else { throw bad("\(name) needs at least 4 arguments, got \(a.count)") }
      guard case .storage(var dtype, let key, let elements) = a[0] else {
        throw bad("\(name) argument 0 is not a storage")
      }
      var storageElements = elements
      if name == "torch._utils._rebuild_tensor_v3" {
        // v3 views an untyped (byte) storage with an explicit dtype argument.
        guard a.count >= 7, case .value(.dtype(let dn)) = a[6] else { throw bad("\(name) needs a dtype") }
        guard let d = RestrictedUnpickler.dtypes[dn] else {
          throw ModelIOError.unsupported(path: path, tensor: nil, reason: "dtype \(dn)")
        }
        let bytes = elements.multipliedReportingOverflow(by: dtype.byteSize)
        guard !bytes.overflow else { throw bad("storage size overflows") }
        storageElements = bytes.partialValue / d.byteSize
        dtype = d
      }
      let offset = try int(a[1], "storage offset")
      let shape = try ints(a[2], "size")
      let strides = try ints(a[3], "stride")
      guard shape.count == strides.count else { throw bad("size and stride ranks differ") }
      return .value(
        .tensor(
          TorchTensorRef(
            storageKey: key, dtype: dtype, storageElements: storageElements, offset: offset, shape: shape,
            strides: strides)))
    case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state",
      "torch.nn.parameter.Parameter":
      guard let data = a.first else { throw bad("\(name) without data") }
      return data
    case "torch._tensor._rebuild_from_type_v2":
      // (func, type, args, state): tensors with Python attributes; the attributes are dropped.
      guard a.count >= 3 else { throw bad("\(name) needs 3 arguments") }
      if case .value(.global(name)) = a[0] { throw bad("\(name) applied to itself") }
      guard case .value(.global(let t)) = a[1], t == "torch.Tensor" || t == "torch.nn.parameter.Parameter" else {
        throw ModelIOError.unsupported(path: path, tensor: nil, reason: "tensor subclass \(describe(a[1]))")
      }
      return try call(a[0], a[2])
    case "torch.Size":
      guard let first = a.first else { return .tuple([], depth: 1) }
      if case .box(let b) = first { return try tuple(b.items) }
      return first
    case "torch.device":
      return a.first ?? .value(.none)
    case "_codecs.encode":
      // Protocol 2 writes bytes as _codecs.encode(latin-1 text, "latin1").
      guard case .value(.string(let s)) = a.first else { throw bad("_codecs.encode without a string") }
      var out: [UInt8] = []
      for u in s.unicodeScalars {
        guard u.value < 256 else { throw bad("_codecs.encode text is not Latin-1") }
        out.append(UInt8(u.value))
      }
      return .value(.bytes(out))
    case "builtins.set", "builtins.frozenset":
      let b = newBox(.set)
      if case .box(let l) = a.first { b.items = l.items } else if case .tuple(let t, _) = a.first { b.items = t }
      return .box(b)
    case "builtins.bytearray":
      if case .value(.bytes) = a.first { return a[0] }
      return .value(.bytes([]))
    case "torch.serialization._get_layout":
      return .value(
        .string(a.first.flatMap { if case .value(.string(let s)) = $0 { return s } else { return nil } } ?? ""))
    default:
      throw bad("\(name) cannot be called")
    }
  }

  mutating func persistentLoad(_ pid: Item) throws -> Item {
    // torch.save's persistent id: ("storage", storage class, key, location, element count).
    guard case .tuple(let t, _) = pid, t.count >= 5 else { throw bad("persistent id is not a 5-tuple") }
    guard case .value(.string(let kind)) = t[0] else { throw bad("persistent id kind is not a string") }
    guard kind == "storage" else { throw bad("persistent id kind '\(kind)' (only 'storage' is allowed)") }
    guard case .value(.global(let cls)) = t[1] else { throw bad("storage type is not a storage class") }
    guard let dtype = RestrictedUnpickler.storageTypes[cls] else {
      throw ModelIOError.unsupported(path: path, tensor: nil, reason: "storage type \(cls)")
    }
    guard case .value(.string(let key)) = t[2] else { throw bad("storage key is not a string") }
    let elements = try int(t[4], "storage size")
    guard elements >= 0 else { throw bad("negative storage size") }
    return .storage(dtype: dtype, key: key, elements: elements)
  }

  func describe(_ i: Item) -> String {
    switch i {
    case .value(let v): return v.typeName
    case .box(let b): return "\(b.kind)"
    case .tuple: return "tuple"
    case .storage: return "storage"
    }
  }

  // MARK: freezing

  func freeze(_ i: Item, depth: Int, maxDepth: Int, budget: inout Int, onPath: inout Set<ObjectIdentifier>) throws
    -> PickleValue
  {
    budget -= 1
    guard budget >= 0 else { throw bad("too many objects (more than the node limit)") }
    guard depth <= maxDepth else { throw bad("nested deeper than \(maxDepth) levels") }
    switch i {
    case .value(let v): return v
    case .storage(_, let key, _): throw bad("bare storage '\(key)' outside a tensor")
    case .tuple(let items, _):
      return .tuple(
        try items.map { try freeze($0, depth: depth + 1, maxDepth: maxDepth, budget: &budget, onPath: &onPath) })
    case .box(let b):
      let id = ObjectIdentifier(b)
      guard !onPath.contains(id) else { throw bad("a container contains itself") }
      onPath.insert(id)
      defer { onPath.remove(id) }
      let values = try b.items.map {
        try freeze($0, depth: depth + 1, maxDepth: maxDepth, budget: &budget, onPath: &onPath)
      }
      switch b.kind {
      case .list, .set: return .list(values)
      case .dict:
        let keys = try b.keys.map {
          try freeze($0, depth: depth + 1, maxDepth: maxDepth, budget: &budget, onPath: &onPath)
        }
        return .dict(zip(keys, values).map { PickleDictEntry(key: $0, value: $1) })
      }
    }
  }
}
