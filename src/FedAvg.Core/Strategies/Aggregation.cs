using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace FedAvg.Core.Strategies;

/// <summary>
/// Streaming aggregation, the FedAvg family: Σ nₖ·wₖ / Σ nₖ, folded in ascending client-id order so that the bits
/// never depend on arrival order. An update that arrives before its predecessors waits; every other one is folded
/// into the running sum at once and released to <see cref="Runtime.WeightBuffers"/>, so a round whose updates come
/// in roughly in order (they do: trainers take clients in the order they were asked) holds a handful of updates
/// however many clients it samples.
/// </summary>
/// <remarks>Memory per round: one model-size float32 sum plus the updates that arrived ahead of their turn.</remarks>
public sealed class OrderedWeightedSum : IRoundAggregator
{
    // float32, like the weights: a double sum would return one update bit for bit, but it moves three times
    // the bytes and measured 3.6× a plain copy against 1.6× (docs/benchmarks.md); the rounding it saves is
    // far below what SGD notices.
    readonly float[] sum;
    readonly IReadOnlyList<string> order;
    readonly Dictionary<string, ClientUpdate> waiting = new();
    readonly HashSet<string> seen = new();
    int next;
    long samples;

    public OrderedWeightedSum(int length, IReadOnlyList<string> clientsInOrder)
    {
        sum = new float[length];
        order = clientsInOrder;
    }

    /// <summary>How many updates are held, waiting for an earlier client's (for tests and diagnostics).</summary>
    public int Waiting => waiting.Count;

    public void Accept(ClientUpdate update)
    {
        Aggregation.CheckUpdate(update, sum.Length);
        if (!seen.Add(update.ClientId)) throw new ArgumentException($"two updates from {update.ClientId}.");
        waiting[update.ClientId] = update;
        while (next < order.Count && waiting.Remove(order[next], out var due))
        {
            Fold(due);
            next++;
        }
    }

    public float[] Complete()
    {
        // clients that never answered leave gaps: fold what is still waiting, in order
        for (; next < order.Count; next++)
            if (waiting.Remove(order[next], out var due)) Fold(due);
        if (waiting.Count > 0)
            throw new ArgumentException($"updates from clients outside the round: {string.Join(", ", waiting.Keys)}.");
        if (samples == 0) throw new ArgumentException("no updates to aggregate.");
        Aggregation.Divide(sum, samples);
        return sum;
    }

    void Fold(ClientUpdate update)
    {
        Aggregation.MultiplyAdd(sum, update.Weights, update.SampleCount);
        samples += update.SampleCount;
        Runtime.WeightBuffers.Return(update.Weights); // the next trainer result reuses it (ignored if not rented)
    }
}

/// <summary>A streaming aggregator followed by a server-side step on its result (FedAvgM, FedAdam, …).</summary>
public sealed class ThenAggregator(IRoundAggregator inner, Func<float[], float[]> then) : IRoundAggregator
{
    public void Accept(ClientUpdate update) => inner.Accept(update);
    public float[] Complete() => then(inner.Complete());
}

/// <summary>
/// Buffered aggregation, for robust rules that need every update of the round at once (median, trimmed mean,
/// Krum, Bulyan). Updates are kept as they arrive and handed to <see cref="Aggregate"/> in ascending client-id
/// order, so the result never depends on arrival order.
/// </summary>
/// <remarks>
/// Memory per round: n × model (every update is held until Complete) plus the result and the rule's scratch.
/// Each update vector goes back to <see cref="Runtime.WeightBuffers"/> only after <see cref="Aggregate"/> has
/// finished reading it, which is why Aggregate must return a fresh vector.
/// </remarks>
public abstract class BufferedAggregator : IRoundAggregator
{
    readonly int length;
    readonly HashSet<string> round;
    readonly Dictionary<string, ClientUpdate> updates = new(StringComparer.Ordinal);
    bool completed;

    protected BufferedAggregator(int length, IReadOnlyList<string> clients)
    {
        this.length = length;
        round = clients.ToHashSet(StringComparer.Ordinal);
    }

    public int Held => updates.Count;

    public void Accept(ClientUpdate update)
    {
        if (completed) throw new InvalidOperationException("the round is already aggregated.");
        Aggregation.CheckUpdate(update, length);
        if (!updates.TryAdd(update.ClientId, update)) throw new ArgumentException($"two updates from {update.ClientId}.");
    }

    public float[] Complete()
    {
        if (completed) throw new InvalidOperationException("the round is already aggregated.");
        completed = true;
        var ordered = updates.Values.OrderBy(u => u.ClientId, StringComparer.Ordinal).ToArray();
        try
        {
            var outside = ordered.Where(u => !round.Contains(u.ClientId)).Select(u => u.ClientId).ToList();
            if (outside.Count > 0) throw new ArgumentException($"updates from clients outside the round: {string.Join(", ", outside)}.");
            if (ordered.Length == 0) throw new ArgumentException("no updates to aggregate.");
            var result = Aggregate(ordered);
            foreach (var u in ordered)
                if (ReferenceEquals(result, u.Weights)) throw new InvalidOperationException($"{GetType().Name} returned an update's own vector.");
            return result;
        }
        finally
        {
            // read for the last time above: the next trainer results may reuse them
            foreach (var u in ordered) Runtime.WeightBuffers.Return(u.Weights);
            updates.Clear();
        }
    }

    /// <summary>The next global weights from every update of the round, in ascending client-id order; a fresh vector.</summary>
    protected abstract float[] Aggregate(IReadOnlyList<ClientUpdate> updates);
}

/// <summary>A buffered aggregator given by a function (for rules that need no state of their own).</summary>
public sealed class BufferedRule(int length, IReadOnlyList<string> clients, Func<IReadOnlyList<ClientUpdate>, float[]> rule)
    : BufferedAggregator(length, clients)
{
    protected override float[] Aggregate(IReadOnlyList<ClientUpdate> updates) => rule(updates);
}

/// <summary>Vectorised loops shared by the strategies.</summary>
public static class Aggregation
{
    internal static void CheckUpdate(ClientUpdate update, int length)
    {
        if (update.Weights.Length != length)
            throw new ArgumentException($"update from {update.ClientId} has {update.Weights.Length} weights, expected {length}.");
        if (update.SampleCount <= 0) throw new ArgumentException($"update from {update.ClientId} claims {update.SampleCount} samples.");
    }

    /// <summary>acc += x · factor, vectorised.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot from the first batch: no unoptimised tier
    public static void MultiplyAdd(Span<float> acc, ReadOnlySpan<float> x, float factor)
    {
        var accV = MemoryMarshal.Cast<float, Vector<float>>(acc);
        var xV = MemoryMarshal.Cast<float, Vector<float>>(x);
        var f = new Vector<float>(factor);
        for (int i = 0; i < accV.Length; i++) accV[i] += xV[i] * f;
        for (int i = accV.Length * Vector<float>.Count; i < acc.Length; i++) acc[i] += x[i] * factor;
    }

    /// <summary>x /= divisor, vectorised (the divisor rounded to float once, as FedAvg has always done).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Divide(Span<float> x, long divisor)
    {
        var total = new Vector<float>(divisor);
        var v = MemoryMarshal.Cast<float, Vector<float>>(x);
        for (int i = 0; i < v.Length; i++) v[i] /= total;
        for (int i = v.Length * Vector<float>.Count; i < x.Length; i++) x[i] /= divisor;
    }

    /// <summary>
    /// Σ nₖ·wₖ / Σ nₖ over <paramref name="updates"/> taken in the given order, with FedAvg's arithmetic (float32
    /// multiply-add, one division): the same bits as <see cref="OrderedWeightedSum"/> over the same updates.
    /// </summary>
    public static float[] WeightedMean(IReadOnlyList<ClientUpdate> updates)
    {
        var sum = new float[updates[0].Weights.Length];
        long samples = 0;
        foreach (var u in updates)
        {
            MultiplyAdd(sum, u.Weights, u.SampleCount);
            samples += u.SampleCount;
        }
        Divide(sum, samples);
        return sum;
    }

    /// <summary>‖a − b‖², vectorised, accumulated in float per block of 4096 and in double across blocks.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static double SquaredDistance(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (a.Length != b.Length) throw new ArgumentException("vectors differ in length.");
        var av = MemoryMarshal.Cast<float, Vector<float>>(a);
        var bv = MemoryMarshal.Cast<float, Vector<float>>(b);
        const int block = 4096 / 8;
        double total = 0;
        for (int start = 0; start < av.Length; start += block)
        {
            var acc = Vector<float>.Zero;
            int end = Math.Min(av.Length, start + block);
            for (int i = start; i < end; i++)
            {
                var d = av[i] - bv[i];
                acc += d * d;
            }
            total += Vector.Sum(acc);
        }
        for (int i = av.Length * Vector<float>.Count; i < a.Length; i++)
        {
            float d = a[i] - b[i];
            total += d * d;
        }
        return total;
    }

    /// <summary>
    /// Calls <paramref name="perCoordinate"/> for every block of coordinates with the n updates' values there sorted
    /// ascending, lane by lane: <c>sorted[r]</c> holds the r-th smallest value of each of the block's coordinates.
    /// Sorting runs on whole vectors (odd–even transposition with Vector.Min/Max: n passes, branch-free), so one
    /// sort handles Vector&lt;float&gt;.Count coordinates; the tail is padded and written back lane by lane.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float[] CoordinateWise(IReadOnlyList<float[]> vectors, Func<Vector<float>[], Vector<float>> perCoordinate)
    {
        int n = vectors.Count, length = vectors[0].Length, width = Vector<float>.Count;
        var result = new float[length];
        var sorted = new Vector<float>[n];
        int blocks = length / width;
        for (int b = 0; b < blocks; b++)
        {
            for (int r = 0; r < n; r++) sorted[r] = new Vector<float>(vectors[r], b * width);
            Sort(sorted);
            perCoordinate(sorted).CopyTo(result, b * width);
        }
        int tail = length - blocks * width;
        if (tail > 0)
        {
            Span<float> lane = stackalloc float[width];
            for (int r = 0; r < n; r++)
            {
                lane.Clear();
                vectors[r].AsSpan(blocks * width, tail).CopyTo(lane);
                sorted[r] = new Vector<float>(lane);
            }
            Sort(sorted);
            perCoordinate(sorted).CopyTo(lane);
            lane[..tail].CopyTo(result.AsSpan(blocks * width));
        }
        return result;
    }

    static void Sort(Vector<float>[] rows)
    {
        int n = rows.Length;
        for (int pass = 0; pass < n; pass++)
            for (int i = pass & 1; i + 1 < n; i += 2)
            {
                var lo = Vector.Min(rows[i], rows[i + 1]);
                rows[i + 1] = Vector.Max(rows[i], rows[i + 1]);
                rows[i] = lo;
            }
    }
}
