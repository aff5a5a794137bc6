import Foundation
import Tensor
import XCTest

@testable import ModelIO

final class HFFolderTests: XCTestCase {
  func testShardedFolderIsOneSource() throws {
    let hf = try HFFolder(folder: Fixture.path("hf_sharded"))
    try assertMatchesExpected(hf, Fixture.tensors("hf_sharded"))
    XCTAssertEqual(hf.files.count, 2)
    XCTAssertEqual(hf.modelType, "t5")
    XCTAssertEqual(hf.architectures, ["T5EncoderModel"])
    XCTAssertEqual(hf.config()["d_model"] as? Int, 8)
  }

  func testSingleFileFolder() throws {
    let hf = try HFFolder(folder: Fixture.path("hf_single"))
    XCTAssertEqual(hf.files.count, 1)
    XCTAssertEqual(hf.keys.count, 3)
  }

  func copyOfSharded() throws -> String {
    let dir = try Fixture.scratch(self) + "/hf"
    try FileManager.default.copyItem(atPath: Fixture.path("hf_sharded"), toPath: dir)
    return dir
  }

  func testBrokenFolders() throws {
    assertModelIOError(["'../plain.safetensors' is not a file name"]) {
      _ = try HFFolder(folder: Fixture.path("bad/hf_escape"))
    }
    let missing = try copyOfSharded()
    try FileManager.default.removeItem(atPath: missing + "/model-00002-of-00002.safetensors")
    assertModelIOError(["model-00002-of-00002.safetensors", "missing"]) { _ = try HFFolder(folder: missing) }

    let lying = try copyOfSharded()
    let indexPath = lying + "/model.safetensors.index.json"
    var index = try XCTUnwrap(
      JSONSerialization.jsonObject(with: XCTUnwrap(FileManager.default.contents(atPath: indexPath))) as? [String: Any])
    var map = try XCTUnwrap(index["weight_map"] as? [String: String])
    map["encoder.ghost.weight"] = "model-00001-of-00002.safetensors"
    index["weight_map"] = map
    try JSONSerialization.data(withJSONObject: index).write(to: URL(fileURLWithPath: indexPath))
    assertModelIOError(["tensor 'encoder.ghost.weight'", "not in this shard"]) { _ = try HFFolder(folder: lying) }

    let empty = try Fixture.scratch(self)
    try "{}".write(toFile: empty + "/config.json", atomically: true, encoding: .utf8)
    assertModelIOError(["no model.safetensors"]) { _ = try HFFolder(folder: empty) }
    assertModelIOError(["config.json"]) { _ = try HFFolder(folder: Fixture.path("png")) }
  }
}

final class KeyTableTests: XCTestCase {
  /// `name (d0, d1, ...)` lines of one `## ` section of the reference shape dump.
  static func referenceShapes(_ section: String) throws -> [String: [Int]] {
    let text = try String(contentsOfFile: Fixture.path("cogview3-state-dict-shapes.txt"), encoding: .utf8)
    var out: [String: [Int]] = [:]
    var inside = false
    for line in text.split(separator: "\n") {
      if line.hasPrefix("## ") {
        inside = line.hasPrefix("## " + section)
        continue
      }
      guard inside, let open = line.firstIndex(of: "(") else { continue }
      let name = line[..<open].trimmingCharacters(in: .whitespaces)
      let dims = line[line.index(after: open)...].dropLast().split(separator: ",").compactMap {
        Int($0.trimmingCharacters(in: .whitespaces))
      }
      out[name] = dims
    }
    return out
  }

  func testSATTableClaimsTheUNetAndStripsItsPrefix() throws {
    let unet = try Self.referenceShapes("UNet")
    XCTAssertEqual(unet.count, 1680)
    let t = KeyTables.sgmSAT
    for name in unet.keys {
      let m = try XCTUnwrap(t.map("model.diffusion_model." + name))
      XCTAssertEqual(m.part, "unet")
      XCTAssertEqual(m.name, name)
    }
    XCTAssertEqual(t.rule(for: "first_stage_model.encoder.conv_in.weight")?.used, false)
    XCTAssertEqual(t.rule(for: "conditioner.embedders.0.x")?.part, "conditioner")
    XCTAssertNil(t.map("something.else"))
    XCTAssertEqual(
      t.ignored(["model.diffusion_model.out.0.weight", "conditioner.a", "conditioner.b", "mystery.x"]),
      ["conditioner.": 2, "mystery.": 1])
  }

  func testVAEAndT5Tables() throws {
    let vae = try Self.referenceShapes("VAE for CogView3 base/relay")
    XCTAssertEqual(vae.count, 248)
    for name in vae.keys {
      XCTAssertEqual(KeyTables.ldmVAE.map(name)?.part, "vae", name)
      XCTAssertEqual(KeyTables.ldmVAE.map(name)?.name, name)
    }
    XCTAssertEqual(KeyTables.ldmVAE.map("first_stage_model.decoder.conv_out.bias")?.name, "decoder.conv_out.bias")
    XCTAssertEqual(KeyTables.ldmVAE.rule(for: "loss.discriminator.main.0.weight")?.used, false)
    XCTAssertEqual(KeyTables.hfT5.map("encoder.block.3.layer.1.DenseReluDense.wo.weight")?.part, "t5")
    XCTAssertEqual(KeyTables.hfT5.map("shared.weight")?.name, "shared.weight")
    XCTAssertEqual(KeyTables.hfT5.rule(for: "decoder.block.0.layer.0.SelfAttention.q.weight")?.used, false)
    XCTAssertEqual(KeyTables.hfT5.rule(for: "lm_head.weight")?.used, false)
  }

  func testSplitGivesOneSourcePerUsedPart() throws {
    let t = try StoredTensorFactory.scalar()
    let src = MemoryTensorSource([
      "model.diffusion_model.out.2.bias": t, "model.diffusion_model.time_embed.0.weight": t,
      "first_stage_model.decoder.conv_in.weight": t, "conditioner.x": t,
    ])
    let parts = KeyTables.sgmSAT.split(src)
    XCTAssertEqual(Array(parts.keys), ["unet"])
    XCTAssertEqual(parts["unet"]?.keys, ["out.2.bias", "time_embed.0.weight"])
    XCTAssertNoThrow(try parts["unet"]?.stored("out.2.bias"))
    assertModelIOError(["no tensor named 'conditioner.x'"]) { _ = try parts["unet"]?.stored("conditioner.x") }
  }
}

enum StoredTensorFactory {
  static func scalar() throws -> StoredTensor { try StoredTensor(Tensor(zeros: [1])) }
}
