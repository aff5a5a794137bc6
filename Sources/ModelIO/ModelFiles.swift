import Foundation
import Tensor

/// The file layouts CogFlow reads.
public enum ModelFileFormat: String, Sendable, Codable {
  case safetensors
  case torchZip = "torch-zip"
  case satFolder = "sat-folder"
  case hfFolder = "hf-folder"
}

/// Opens whatever a model path holds: a SAT folder (`latest`), a Hugging Face folder (`config.json`),
/// a safetensors file, or a `torch.save` zip, judged by content rather than by file name.
public enum ModelFiles {
  public static func open(_ path: String) throws -> (format: ModelFileFormat, source: any TensorSource) {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
      throw ModelIOError.unreadable(path: path, reason: "no such file or folder")
    }
    if isDir.boolValue {
      let dir = path as NSString
      if FileManager.default.fileExists(atPath: dir.appendingPathComponent("latest")) {
        return (.satFolder, try SATCheckpoint(folder: path))
      }
      if FileManager.default.fileExists(atPath: dir.appendingPathComponent("config.json")) {
        return (.hfFolder, try HFFolder(folder: path))
      }
      throw ModelIOError.unreadable(
        path: path, reason: "folder is neither a SAT checkpoint ('latest') nor a Hugging Face model ('config.json')")
    }
    let head = try TorchCheckpoint.sniff(path)
    if head.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) {
      throw ModelIOError.unsupported(path: path, tensor: nil, reason: "this is a PNG image, not a model file")
    }
    if head.starts(with: [0x50, 0x4B, 0x03, 0x04]) || head.starts(with: [0x50, 0x4B, 0x05, 0x06]) {
      return (.torchZip, try TorchCheckpoint(path: path))
    }
    if head.starts(with: [0x80]) {
      throw ModelIOError.unsupported(
        path: path, tensor: nil, reason: "legacy (pre-1.6, non-zip) torch.save format; re-save it with torch.save")
    }
    return (.safetensors, try SafetensorsFile(path: path))
  }
}

/// What `cogflow inspect` prints: counts from the headers only, plus the recognized parts.
public struct ModelSummary: Sendable, Codable {
  public var path: String
  public var format: ModelFileFormat
  /// Details of the layout (SAT iteration and file, HF shards, torch record folder).
  public var layout: [String]
  public var tensorCount: Int
  public var dtypes: [String: Int]
  public var parameters: Int
  public var bytes: Int
  public var recognized: [RecognizedPart]
  /// Prefixes present but not used by CogFlow, with tensor counts.
  public var ignoredPrefixes: [String: Int]

  public init(path: String) throws {
    let (format, source) = try ModelFiles.open(path)
    self.path = path
    self.format = format
    var layout: [String] = []
    var infos: [String: TensorInfo] = [:]
    var ignored: [String: Int] = [:]
    switch source {
    case let sat as SATCheckpoint:
      layout.append("latest = \(sat.iteration): \(sat.module.location)")
      layout.append("state dict under 'module', UNet under '\(SATCheckpoint.unetPrefix)'")
      for k in sat.module.keys { infos[k] = try sat.module.info(k) }
      ignored = sat.otherPrefixes
    case let hf as HFFolder:
      layout.append("model_type \(hf.modelType ?? "?"), architectures \(hf.architectures)")
      layout.append(
        "\(hf.files.count) safetensors file(s): "
          + hf.files.map { ($0.location as NSString).lastPathComponent }.joined(separator: ", "))
      for k in hf.keys { infos[k] = try hf.info(k) }
    case let torch as TorchCheckpoint:
      layout.append("torch.save zip, records under '\(torch.recordPrefix)'")
      for k in torch.keys { infos[k] = try torch.info(k) }
    default:
      for k in source.keys { infos[k] = try source.info(k) }
    }
    tensorCount = infos.count
    var dtypes: [String: Int] = [:]
    var params = 0
    var bytes = 0
    // Saturating sums: a hostile checkpoint may declare broadcast views of enormous size.
    func add(_ a: Int, _ b: Int) -> Int {
      let (r, o) = a.addingReportingOverflow(b)
      return o ? Int.max : r
    }
    for i in infos.values {
      dtypes[i.dtype.rawValue, default: 0] += 1
      params = add(params, i.elementCount)
      bytes = add(bytes, i.byteCount)
    }
    self.dtypes = dtypes
    parameters = params
    self.bytes = bytes
    self.layout = layout
    recognized = ModelRecognizer.recognize(infos.mapValues(\.shape))
    if format == .hfFolder, recognized.contains(where: { if case .t5 = $0.kind { return true } else { return false } })
    {
      ignored = KeyTables.hfT5.ignored(Array(infos.keys))
    }
    ignoredPrefixes = ignored
  }
}
