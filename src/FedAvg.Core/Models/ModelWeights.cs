using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace FedAvg.Core.Models;

/// <summary>One named tensor of a model: where it sits in the flat vector and its shape.</summary>
public sealed record WeightEntry(string Name, long[] Shape, int Offset, int Length);

/// <summary>The names and shapes behind a flat weight vector, in the module's state-dict order.</summary>
public sealed class WeightLayout : IEquatable<WeightLayout>
{
    public IReadOnlyList<WeightEntry> Entries { get; }
    public int TotalLength { get; }

    /// <summary>
    /// FNV-1a (64 bit) of every entry's name and shape, in order: two builds agree on it exactly when their models
    /// have the same tensors in the same order. Nodes compare it at registration and every weight vector carries it.
    /// </summary>
    public ulong Hash { get; }

    public WeightLayout(IReadOnlyList<WeightEntry> entries)
    {
        Entries = entries;
        TotalLength = entries.Count == 0 ? 0 : entries[^1].Offset + entries[^1].Length;
        Hash = HashOf(entries);
    }

    static ulong HashOf(IReadOnlyList<WeightEntry> entries)
    {
        ulong h = 0xcbf29ce484222325UL;
        void Mix(long value)
        {
            for (int b = 0; b < 8; b++)
            {
                h ^= (byte)(value >> (8 * b));
                h *= 0x100000001b3UL;
            }
        }
        foreach (var e in entries)
        {
            foreach (char c in e.Name) Mix(c);
            Mix(-1);
            foreach (var d in e.Shape) Mix(d);
            Mix(-2);
        }
        return h;
    }

    public static WeightLayout Of(nn.Module module)
    {
        var entries = new List<WeightEntry>();
        int offset = 0;
        foreach (var (name, tensor) in module.state_dict())
        {
            if (tensor.dtype != ScalarType.Float32)
                throw new NotSupportedException($"{name}: only float32 weights are supported, found {tensor.dtype}.");
            int length = checked((int)tensor.numel());
            entries.Add(new WeightEntry(name, tensor.shape, offset, length));
            offset += length;
        }
        return new WeightLayout(entries);
    }

    public bool Equals(WeightLayout? other) =>
        other is not null && Entries.Count == other.Entries.Count &&
        Entries.Zip(other.Entries).All(p => p.First.Name == p.Second.Name && p.First.Shape.SequenceEqual(p.Second.Shape));

    public override bool Equals(object? obj) => Equals(obj as WeightLayout);
    public override int GetHashCode() => HashCode.Combine(Entries.Count, TotalLength);

    public string Describe() => string.Join(", ", Entries.Select(e => $"{e.Name}[{string.Join("x", e.Shape)}]"));
}

/// <summary>
/// A model's weights as one contiguous float32 vector. Copies between a module and a vector are a single
/// memcpy per tensor through <c>Tensor.bytes</c>; no per-element work happens in C#.
/// </summary>
public static class Weights
{
    /// <summary>Copies the module's weights into a new vector.</summary>
    public static float[] Read(nn.Module module, WeightLayout layout)
    {
        var vector = new float[layout.TotalLength];
        ReadInto(module, layout, vector);
        return vector;
    }

    public static void ReadInto(nn.Module module, WeightLayout layout, Span<float> vector)
    {
        if (vector.Length != layout.TotalLength)
            throw new ArgumentException($"vector has {vector.Length} floats, layout needs {layout.TotalLength}.");
        var state = module.state_dict();
        foreach (var entry in layout.Entries)
        {
            var tensor = state[entry.Name];
            ReadOnlySpan<byte> source = Contiguous(tensor, entry).bytes;
            source.CopyTo(MemoryMarshal.AsBytes(vector.Slice(entry.Offset, entry.Length)));
        }
    }

    /// <summary>Overwrites the module's weights from the vector, in place.</summary>
    public static void Write(nn.Module module, WeightLayout layout, ReadOnlySpan<float> vector)
    {
        if (vector.Length != layout.TotalLength)
            throw new ArgumentException($"vector has {vector.Length} floats, layout needs {layout.TotalLength}.");
        var state = module.state_dict();
        using var _ = torch.no_grad();
        foreach (var entry in layout.Entries)
        {
            var tensor = Contiguous(state[entry.Name], entry);
            MemoryMarshal.AsBytes(vector.Slice(entry.Offset, entry.Length)).CopyTo(tensor.bytes);
        }
    }

    static Tensor Contiguous(Tensor tensor, WeightEntry entry)
    {
        if (!tensor.is_contiguous() || tensor.device_type != DeviceType.CPU)
            throw new NotSupportedException($"{entry.Name}: weights must be contiguous CPU tensors.");
        if (tensor.numel() != entry.Length)
            throw new ArgumentException($"{entry.Name}: module has {tensor.numel()} values, layout says {entry.Length}.");
        return tensor;
    }

    public static long ParameterCount(nn.Module module) => module.parameters().Sum(p => p.numel());
}
