using System.Globalization;

namespace FedAvg.Core.Partitioning;

/// <summary>
/// Splits a labelled set among clients. Pure and deterministic: the same labels, client count and seed
/// always give the same index lists. Each client gets its indices in ascending order.
/// </summary>
public abstract record Partitioner
{
    public const string Names = "iid[:samples-per-client], iid-balanced[:samples-per-client], contiguous, shards[:shards-per-client], dirichlet:alpha, classes:k";

    public abstract string Spec { get; }

    public int[][] Split(ReadOnlySpan<byte> labels, int classes, int clients, int seed)
    {
        Require.AtLeast(clients, 1, "clients");
        if (clients > labels.Length)
            throw new UsageException($"clients ({clients}) must not exceed the number of training samples ({labels.Length}).");
        var parts = SplitCore(labels, classes, clients, new Random(seed));
        foreach (var part in parts) Array.Sort(part);
        return parts;
    }

    protected abstract int[][] SplitCore(ReadOnlySpan<byte> labels, int classes, int clients, Random rng);

    public override string ToString() => Spec;

    /// <summary>Parses "iid", "iid-balanced:450", "contiguous", "shards", "shards:2", "dirichlet:0.5", "classes:2".</summary>
    public static Partitioner Parse(string spec)
    {
        string text = spec.Trim();
        int colon = text.IndexOf(':');
        string name = colon < 0 ? text : text[..colon];
        string? arg = colon < 0 ? null : text[(colon + 1)..];
        return name switch
        {
            "iid" => new Iid(arg is null ? null : ParseInt(arg, spec, 1)),
            "contiguous" when arg is null => new Contiguous(),
            "iid-balanced" => new IidBalanced(arg is null ? null : ParseInt(arg, spec, 1)),
            "shards" => new Shards(arg is null ? 2 : ParseInt(arg, spec, 1)),
            "dirichlet" when arg is not null => new Dirichlet(ParseAlpha(arg, spec)),
            "classes" when arg is not null => new Classes(ParseInt(arg, spec, 1)),
            _ => throw new UsageException($"Unknown partition '{spec}'. Valid partitions: {Names}."),
        };
    }

    static int ParseInt(string arg, string spec, int minimum)
    {
        if (!int.TryParse(arg, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value) || value < minimum)
            throw new UsageException($"Partition '{spec}': '{arg}' must be a whole number ≥ {minimum}.");
        return value;
    }

    static double ParseAlpha(string arg, string spec)
    {
        if (!double.TryParse(arg, NumberStyles.Float, CultureInfo.InvariantCulture, out double alpha) || !(alpha > 0) || double.IsInfinity(alpha))
            throw new UsageException($"Partition '{spec}': alpha must be a positive number, got '{arg}'.");
        return alpha;
    }

    internal static void Shuffle<T>(Span<T> items, Random rng)
    {
        for (int i = items.Length - 1; i > 0; i--)
        {
            int j = rng.Next(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }

    internal static List<int>[] IndicesByLabel(ReadOnlySpan<byte> labels, int classes)
    {
        var byLabel = new List<int>[classes];
        for (int c = 0; c < classes; c++) byLabel[c] = [];
        for (int i = 0; i < labels.Length; i++) byLabel[labels[i]].Add(i);
        return byLabel;
    }

    /// <summary>Cuts <paramref name="items"/> into <paramref name="parts"/> runs whose sizes differ by at most one.</summary>
    internal static int[][] CutEvenly(int[] items, int parts)
    {
        var result = new int[parts][];
        int size = items.Length / parts, extra = items.Length % parts, start = 0;
        for (int p = 0; p < parts; p++)
        {
            int length = size + (p < extra ? 1 : 0);
            result[p] = items[start..(start + length)];
            start += length;
        }
        return result;
    }
}

/// <summary>
/// Random equal split of every sample (seed 002's IID); with a size, each client gets that many random samples
/// and the rest are unused (so that work per client stays the same however many clients there are).
/// </summary>
public sealed record Iid(int? SamplesPerClient = null) : Partitioner
{
    public override string Spec => SamplesPerClient is { } n ? $"iid:{n}" : "iid";

    protected override int[][] SplitCore(ReadOnlySpan<byte> labels, int classes, int clients, Random rng)
    {
        var all = Enumerable.Range(0, labels.Length).ToArray();
        Shuffle<int>(all, rng);
        if (SamplesPerClient is not { } n) return CutEvenly(all, clients);
        if ((long)n * clients > all.Length)
            throw new UsageException($"Partition '{Spec}': {clients} clients × {n} samples needs {(long)n * clients}, but there are {all.Length}.");
        return Enumerable.Range(0, clients).Select(k => all[(k * n)..((k + 1) * n)]).ToArray();
    }
}

/// <summary>Consecutive slices in file order (seed 000's <c>train_dataset[i:i+6000]</c>).</summary>
public sealed record Contiguous : Partitioner
{
    public override string Spec => "contiguous";

    protected override int[][] SplitCore(ReadOnlySpan<byte> labels, int classes, int clients, Random rng) =>
        CutEvenly(Enumerable.Range(0, labels.Length).ToArray(), clients);
}

/// <summary>
/// The same count of every label on every client (seed 001). Without a size, each client gets as many of
/// each label as the rarest label allows; samples left over are unused.
/// </summary>
public sealed record IidBalanced(int? SamplesPerClient) : Partitioner
{
    public override string Spec => SamplesPerClient is { } n ? $"iid-balanced:{n}" : "iid-balanced";

    protected override int[][] SplitCore(ReadOnlySpan<byte> labels, int classes, int clients, Random rng)
    {
        var byLabel = IndicesByLabel(labels, classes);
        int rarest = byLabel.Min(l => l.Count);
        int perLabel;
        if (SamplesPerClient is { } n)
        {
            if (n % classes != 0)
                throw new UsageException($"Partition '{Spec}': samples per client ({n}) must be a multiple of the {classes} classes.");
            perLabel = n / classes;
            if ((long)perLabel * clients > rarest)
                throw new UsageException(
                    $"Partition '{Spec}': {clients} clients × {perLabel} per label needs {(long)perLabel * clients} samples of each label, " +
                    $"but the rarest label has {rarest}.");
        }
        else
        {
            perLabel = rarest / clients;
            if (perLabel == 0) throw new UsageException($"Partition '{Spec}': {clients} clients is more than the rarest label's {rarest} samples.");
        }

        var parts = new int[clients][];
        for (int k = 0; k < clients; k++) parts[k] = new int[perLabel * classes];
        for (int c = 0; c < classes; c++)
        {
            var pool = byLabel[c].ToArray();
            Shuffle<int>(pool, rng);
            for (int k = 0; k < clients; k++)
                Array.Copy(pool, k * perLabel, parts[k], c * perLabel, perLabel);
        }
        return parts;
    }
}

/// <summary>
/// McMahan et al.'s pathological non-IID split: sort by label, cut into clients × shards-per-client shards
/// of equal size, and give each client that many shards at random.
/// </summary>
public sealed record Shards(int ShardsPerClient) : Partitioner
{
    public override string Spec => ShardsPerClient == 2 ? "shards" : $"shards:{ShardsPerClient}";

    protected override int[][] SplitCore(ReadOnlySpan<byte> labels, int classes, int clients, Random rng)
    {
        int shardCount = clients * ShardsPerClient;
        if (shardCount > labels.Length)
            throw new UsageException($"Partition '{Spec}': {shardCount} shards is more than the {labels.Length} samples.");
        // Shuffle within each label first so a shard is a random sample of its label, then sort by label.
        var byLabel = IndicesByLabel(labels, classes);
        var sorted = new List<int>(labels.Length);
        foreach (var list in byLabel)
        {
            var pool = list.ToArray();
            Shuffle<int>(pool, rng);
            sorted.AddRange(pool);
        }
        var shards = CutEvenly(sorted.ToArray(), shardCount);
        var order = Enumerable.Range(0, shardCount).ToArray();
        Shuffle<int>(order, rng);
        var parts = new int[clients][];
        for (int k = 0; k < clients; k++)
            parts[k] = order.Skip(k * ShardsPerClient).Take(ShardsPerClient).SelectMany(s => shards[s]).ToArray();
        return parts;
    }
}

/// <summary>
/// Label skew from a Dirichlet prior: each client draws its label proportions q ~ Dir(α) and fills an equal
/// share of the samples by drawing labels from q (renormalised over labels not yet exhausted). Small α gives
/// clients dominated by one or two labels; large α approaches IID. Every sample is used exactly once.
/// </summary>
public sealed record Dirichlet(double Alpha) : Partitioner
{
    public override string Spec => $"dirichlet:{Alpha.ToString(CultureInfo.InvariantCulture)}";

    protected override int[][] SplitCore(ReadOnlySpan<byte> labels, int classes, int clients, Random rng)
    {
        var pools = IndicesByLabel(labels, classes).Select(l =>
        {
            var pool = l.ToArray();
            Shuffle<int>(pool, rng);
            return new Stack<int>(pool);
        }).ToArray();
        var sizes = CutEvenly(new int[labels.Length], clients).Select(p => p.Length).ToArray();
        var parts = new int[clients][];
        var q = new double[classes];
        for (int k = 0; k < clients; k++)
        {
            Sampling.Dirichlet(rng, Alpha, q);
            var part = new int[sizes[k]];
            for (int s = 0; s < part.Length; s++)
            {
                double total = 0;
                for (int c = 0; c < classes; c++) if (pools[c].Count > 0) total += q[c];
                int chosen = -1;
                if (total > 0)
                {
                    double u = rng.NextDouble() * total;
                    for (int c = 0; c < classes; c++)
                    {
                        if (pools[c].Count == 0) continue;
                        chosen = c;
                        u -= q[c];
                        if (u < 0) break;
                    }
                }
                else
                {
                    // every label this client wants is used up: take from the largest remaining pool
                    chosen = Enumerable.Range(0, classes).MaxBy(c => pools[c].Count);
                }
                part[s] = pools[chosen].Pop();
            }
            parts[k] = part;
        }
        return parts;
    }
}

/// <summary>
/// Each client sees only k labels (the non-IID split seed 002 meant). Label sets are dealt from a shuffled,
/// repeating sequence of labels so that every label lands on the same number of clients (±1); each label's
/// samples are then divided evenly among the clients that hold it.
/// </summary>
public sealed record Classes(int LabelsPerClient) : Partitioner
{
    public override string Spec => $"classes:{LabelsPerClient}";

    protected override int[][] SplitCore(ReadOnlySpan<byte> labels, int classes, int clients, Random rng)
    {
        if (LabelsPerClient > classes)
            throw new UsageException($"Partition '{Spec}': {LabelsPerClient} labels per client but the dataset has {classes}.");
        if ((long)clients * LabelsPerClient < classes)
            throw new UsageException(
                $"Partition '{Spec}': {clients} clients × {LabelsPerClient} labels cannot cover all {classes} labels; use more clients or a larger k.");
        var order = Enumerable.Range(0, classes).ToArray();
        Shuffle<int>(order, rng);
        var holders = new List<int>[classes];
        for (int c = 0; c < classes; c++) holders[c] = [];
        for (int k = 0; k < clients; k++)
            for (int j = 0; j < LabelsPerClient; j++)
                holders[order[(k * LabelsPerClient + j) % classes]].Add(k);

        var parts = Enumerable.Range(0, clients).Select(_ => new List<int>()).ToArray();
        var byLabel = IndicesByLabel(labels, classes);
        for (int c = 0; c < classes; c++)
        {
            var pool = byLabel[c].ToArray();
            Shuffle<int>(pool, rng);
            var pieces = CutEvenly(pool, holders[c].Count);
            for (int h = 0; h < holders[c].Count; h++) parts[holders[c][h]].AddRange(pieces[h]);
        }
        foreach (var (part, k) in parts.Select((p, k) => (p, k)))
            if (part.Count == 0) throw new UsageException($"Partition '{Spec}': client {k} would get no samples.");
        return parts.Select(p => p.ToArray()).ToArray();
    }
}
