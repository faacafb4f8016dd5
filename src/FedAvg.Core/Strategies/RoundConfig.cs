using System.Globalization;
using FedAvg.Core.Training;

namespace FedAvg.Core.Strategies;

/// <summary>
/// The per-round training config a strategy sends to its clients, as in Flower's <c>FitIns.config</c>: an ordered
/// map from string keys to numbers. The well-known keys are the ones <see cref="TrainConfig"/> reads; a strategy may
/// add its own, and unknown keys are kept (in order), so a wire serializer can carry the config as the flat list of
/// <see cref="Entries"/> and rebuild it with <see cref="RoundConfig(IEnumerable{KeyValuePair{string, double}})"/>.
/// Immutable: <see cref="With"/> returns a changed copy.
/// </summary>
public sealed class RoundConfig : IEquatable<RoundConfig>
{
    public const string Epochs = "epochs";
    public const string Batch = "batch";
    public const string LearningRate = "lr";
    public const string Momentum = "momentum";
    public const string WeightDecay = "weight-decay";
    public const string ProximalMu = "proximal-mu";

    readonly KeyValuePair<string, double>[] entries;

    /// <summary>From (key, value) pairs in order; a key given twice is refused.</summary>
    public RoundConfig(IEnumerable<KeyValuePair<string, double>> entries)
    {
        this.entries = entries.ToArray();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (key, _) in this.entries)
        {
            ArgumentException.ThrowIfNullOrEmpty(key);
            if (!seen.Add(key)) throw new ArgumentException($"round config: key '{key}' given twice.");
        }
    }

    public static RoundConfig Of(params (string Key, double Value)[] entries) =>
        new(entries.Select(e => KeyValuePair.Create(e.Key, e.Value)));

    /// <summary>The typed config as a round config: epochs, batch, lr, momentum, weight-decay, proximal-mu, in that order.</summary>
    public static RoundConfig From(TrainConfig train) => Of(
        (Epochs, train.Epochs), (Batch, train.BatchSize), (LearningRate, train.LearningRate),
        (Momentum, train.Momentum), (WeightDecay, train.WeightDecay), (ProximalMu, train.ProximalMu));

    /// <summary>Every (key, value) pair, in order: what a serializer writes.</summary>
    public IReadOnlyList<KeyValuePair<string, double>> Entries => entries;

    public int Count => entries.Length;

    public bool TryGetValue(string key, out double value)
    {
        foreach (var (k, v) in entries)
            if (k == key)
            {
                value = v;
                return true;
            }
        value = 0;
        return false;
    }

    public double this[string key] =>
        TryGetValue(key, out var value) ? value : throw new KeyNotFoundException($"round config has no '{key}'.");

    /// <summary>A copy with <paramref name="key"/> set: replaced where it stands, or appended.</summary>
    public RoundConfig With(string key, double value)
    {
        int at = Array.FindIndex(entries, e => e.Key == key);
        var copy = at >= 0 ? (KeyValuePair<string, double>[])entries.Clone() : [.. entries, default];
        copy[at >= 0 ? at : copy.Length - 1] = KeyValuePair.Create(key, value);
        return new RoundConfig(copy);
    }

    /// <summary>
    /// The typed config the trainer reads. epochs, batch and lr must be present (epochs and batch whole numbers);
    /// momentum, weight-decay and proximal-mu default to 0; other keys are ignored here.
    /// </summary>
    public TrainConfig ToTrainConfig() => new(
        Whole(Epochs), Whole(Batch), Required(LearningRate),
        Optional(Momentum), Optional(WeightDecay), Optional(ProximalMu));

    double Required(string key) =>
        TryGetValue(key, out var v) ? v : throw new ArgumentException($"round config has no '{key}'.");

    double Optional(string key) => TryGetValue(key, out var v) ? v : 0;

    int Whole(string key)
    {
        double v = Required(key);
        if (v != Math.Floor(v) || v < int.MinValue || v > int.MaxValue)
            throw new ArgumentException($"round config: '{key}' must be a whole number, got {v.ToString(CultureInfo.InvariantCulture)}.");
        return (int)v;
    }

    public bool Equals(RoundConfig? other) =>
        other is not null && entries.Length == other.entries.Length &&
        entries.Zip(other.entries).All(p => p.First.Key == p.Second.Key && p.First.Value.Equals(p.Second.Value));

    public override bool Equals(object? obj) => Equals(obj as RoundConfig);

    public override int GetHashCode()
    {
        var h = new HashCode();
        foreach (var (k, v) in entries)
        {
            h.Add(k);
            h.Add(v);
        }
        return h.ToHashCode();
    }

    public override string ToString() =>
        "{" + string.Join(", ", entries.Select(e => $"{e.Key}={e.Value.ToString("R", CultureInfo.InvariantCulture)}")) + "}";
}
