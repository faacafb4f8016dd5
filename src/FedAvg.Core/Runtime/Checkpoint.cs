using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using FedAvg.Core.Models;

namespace FedAvg.Core.Runtime;

/// <summary>
/// The global model after a completed round, with what a resumed run needs to go on exactly as the uninterrupted
/// one would: the round, the run seed (every random draw derives from seed and round, see <see cref="Seeds"/>),
/// the model name and its layout, and the strategy's name and state (a server optimizer's momentum or moments,
/// <see cref="Strategies.IStrategy.SaveState"/>). Written atomically, with a sha256 trailer that detects any damage.
/// </summary>
/// <remarks>
/// Format version 2: magic, version, model, layout, round, seed, strategy name, state length, weight count (the
/// header), then the weights, the strategy state and the sha256 of everything before it. Version 1 files (no
/// strategy fields) are read as strategy "fedavg" with empty state, which is what wrote them.
/// </remarks>
public sealed record Checkpoint(string ModelName, WeightLayout Layout, int Round, int Seed, float[] Weights,
    string StrategyName = Strategies.FedAvgStrategy.StrategyName, byte[]? StrategyState = null)
{
    public const string FileName = "checkpoint.bin";
    static readonly byte[] Magic = "FEDAVGCK"u8.ToArray();
    public const int Version = 2;

    /// <summary>The strategy's saved state; empty for a stateless strategy.</summary>
    public byte[] StrategyState { get; init; } = StrategyState ?? [];

    /// <summary>
    /// Streams the checkpoint to a temporary file and moves it into place. The weights go from the array to the file
    /// and to the hash without an intermediate copy: a checkpoint is written every round, beside the evaluation.
    /// </summary>
    public void Save(string path) => AtomicFile.Write(path, WriteTo);

    void WriteTo(Stream stream) => WriteTo(stream, Version);

    /// <summary>Writes the checkpoint in format <paramref name="version"/> (1 only for tests of reading old files).</summary>
    internal void WriteTo(Stream stream, int version)
    {
        if (version == 1 && (StrategyName != Strategies.FedAvgStrategy.StrategyName || StrategyState.Length > 0))
            throw new InvalidOperationException("format version 1 holds no strategy state.");
        using var header = new MemoryStream();
        using (var w = new BinaryWriter(header, Encoding.UTF8, leaveOpen: true))
        {
            w.Write(Magic);
            w.Write(version);
            w.Write(ModelName);
            w.Write(Layout.Entries.Count);
            foreach (var e in Layout.Entries)
            {
                w.Write(e.Name);
                w.Write(e.Shape.Length);
                foreach (var d in e.Shape) w.Write(d);
            }
            w.Write(Round);
            w.Write(Seed);
            if (version >= 2)
            {
                w.Write(StrategyName);
                w.Write(StrategyState.Length);
            }
            w.Write(Weights.Length);
        }
        var headerBytes = header.GetBuffer().AsSpan(0, (int)header.Length);
        var weightBytes = MemoryMarshal.AsBytes(Weights.AsSpan());
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        sha.AppendData(headerBytes);
        sha.AppendData(weightBytes);
        sha.AppendData(StrategyState);
        stream.Write(headerBytes);
        stream.Write(weightBytes);
        stream.Write(StrategyState);
        stream.Write(sha.GetHashAndReset());
    }

    /// <summary>
    /// Reads and checks a checkpoint; with <paramref name="expectedModel"/>, refuses one from another model, and with
    /// <paramref name="expectedStrategy"/> one written by another strategy.
    /// </summary>
    public static Checkpoint Load(string path, string? expectedModel = null, string? expectedStrategy = null)
    {
        if (!File.Exists(path)) throw new DataException($"{path}: checkpoint not found.");
        return Read(File.ReadAllBytes(path), path, expectedModel, expectedStrategy);
    }

    /// <summary>As <see cref="Load"/>, from a checkpoint's bytes (a standby's replica); <paramref name="path"/> names them in errors.</summary>
    public static Checkpoint Read(byte[] bytes, string path, string? expectedModel = null, string? expectedStrategy = null)
    {
        if (bytes.Length < Magic.Length + 4 + 32 || !bytes.AsSpan(0, Magic.Length).SequenceEqual(Magic))
            throw new DataException($"{path}: not a FedAvg.Actors checkpoint (bad magic).");
        var body = bytes.AsSpan(0, bytes.Length - 32);
        if (!SHA256.HashData(body).AsSpan().SequenceEqual(bytes.AsSpan(bytes.Length - 32)))
            throw new DataException($"{path}: checkpoint is damaged (sha256 trailer does not match its content).");
        try
        {
            using var r = new BinaryReader(new MemoryStream(bytes, 0, body.Length), Encoding.UTF8);
            r.ReadBytes(Magic.Length);
            int version = r.ReadInt32();
            if (version is not (1 or Version)) throw new DataException($"{path}: checkpoint version {version}, this build reads 1 and {Version}.");
            string model = r.ReadString();
            if (expectedModel is not null && model != expectedModel)
                throw new DataException($"{path}: checkpoint is of model '{model}', but this run uses '{expectedModel}'.");
            int count = r.ReadInt32();
            var entries = new List<WeightEntry>(count);
            int offset = 0;
            for (int i = 0; i < count; i++)
            {
                string name = r.ReadString();
                var shape = new long[r.ReadInt32()];
                for (int d = 0; d < shape.Length; d++) shape[d] = r.ReadInt64();
                int length = checked((int)shape.Aggregate(1L, (a, b) => a * b));
                entries.Add(new WeightEntry(name, shape, offset, length));
                offset += length;
            }
            int round = r.ReadInt32();
            int seed = r.ReadInt32();
            string strategy = Strategies.FedAvgStrategy.StrategyName;
            int stateLength = 0;
            if (version >= 2)
            {
                strategy = r.ReadString();
                stateLength = r.ReadInt32();
                if (stateLength < 0) throw new DataException($"{path}: checkpoint claims {stateLength} bytes of strategy state.");
            }
            if (expectedStrategy is not null && strategy != expectedStrategy)
                throw new DataException($"{path}: checkpoint was written by strategy '{strategy}', but this run uses '{expectedStrategy}'.");
            int n = r.ReadInt32();
            if (n != offset) throw new DataException($"{path}: checkpoint holds {n} weights but its layout describes {offset}.");
            var weights = new float[n];
            if (r.Read(MemoryMarshal.AsBytes(weights.AsSpan())) != n * sizeof(float))
                throw new DataException($"{path}: checkpoint is truncated.");
            var state = r.ReadBytes(stateLength);
            if (state.Length != stateLength) throw new DataException($"{path}: checkpoint is truncated.");
            if (r.BaseStream.Position != body.Length) throw new DataException($"{path}: checkpoint has {body.Length - r.BaseStream.Position} unexpected bytes.");
            return new Checkpoint(model, new WeightLayout(entries), round, seed, weights, strategy, state);
        }
        catch (EndOfStreamException)
        {
            throw new DataException($"{path}: checkpoint is truncated.");
        }
    }
}
