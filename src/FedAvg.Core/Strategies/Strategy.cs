using System.Buffers.Binary;
using System.Runtime.InteropServices;
using FedAvg.Core.Training;

namespace FedAvg.Core.Strategies;

/// <summary>Settings every strategy shares (McMahan et al. 2017): C, the minimum per round, local training, the run seed.</summary>
public sealed record FedAvgOptions(double Fraction, int MinClients, TrainConfig Train, int Seed)
{
    public void Validate()
    {
        Require.InRange(Fraction, 0, 1, "fraction (C)");
        Require.AtLeast(MinClients, 1, "min-clients");
        Train.Validate();
    }

    /// <summary>The sampler these options describe: FedAvg's seeded fraction.</summary>
    public IClientSampler Sampler() => new SeededFractionSampler(Fraction, MinClients, Seed);
}

/// <summary>
/// What the strategies share, as Flower's strategies share <c>FedAvg.configure_fit</c>: the sampler picks the round's
/// clients, the round config starts from the common <see cref="TrainConfig"/> and each strategy may amend it
/// (<see cref="ConfigureTraining"/>), and a robust rule raises the round's minimum to what it needs
/// (<see cref="RequiredUpdates"/>).
/// </summary>
public abstract class Strategy : IStrategy
{
    protected Strategy(FedAvgOptions options, IClientSampler? sampler = null)
    {
        options.Validate();
        Options = options;
        Sampler = sampler ?? options.Sampler();
    }

    public FedAvgOptions Options { get; }
    public IClientSampler Sampler { get; }
    public abstract string Name { get; }

    /// <summary>The fewest updates the rule can aggregate (1 for the averages; 2f + 3 for Krum, …).</summary>
    public virtual int RequiredUpdates => 1;

    public virtual void Validate(int clientsPerRound) =>
        Require.AtLeast(clientsPerRound, Math.Max(1, RequiredUpdates), $"{Name}: clients per round");

    public RoundPlan ConfigureRound(int round, IReadOnlyList<string> availableClients)
    {
        var sample = Sampler.Sample(round, availableClients);
        int minimum = Math.Max(sample.MinimumUpdates, Math.Min(RequiredUpdates, sample.Clients.Count));
        return new RoundPlan(round, sample.Clients, ConfigureTraining(round, RoundConfig.From(Options.Train)), minimum);
    }

    /// <summary>The round's config, from the common one; FedProx adds proximal-mu, the adaptive ones set lr to eta-l.</summary>
    protected virtual RoundConfig ConfigureTraining(int round, RoundConfig config) => config;

    public abstract IRoundAggregator StartAggregation(RoundPlan plan, float[] current);

    public virtual byte[] SaveState() => [];

    public virtual void LoadState(ReadOnlySpan<byte> state)
    {
        if (!state.IsEmpty) throw new DataException($"strategy '{Name}' keeps no state, but {state.Length} bytes of it were given.");
    }

    /// <summary>Throws when a round closed with fewer updates than the rule needs (the plan's minimum prevents it).</summary>
    protected void RequireUpdates(int count)
    {
        if (count < RequiredUpdates)
            throw new InvalidOperationException($"{Name}: {count} updates to aggregate, the rule needs at least {RequiredUpdates}.");
    }
}

/// <summary>
/// A server optimizer's state as bytes: a tag naming the strategy, then each vector as its length (−1 for none yet)
/// and its float32 values, little-endian.
/// </summary>
public static class StrategyState
{
    public static byte[] Write(string tag, params float[]?[] vectors)
    {
        var tagBytes = System.Text.Encoding.UTF8.GetBytes(tag);
        long size = 4 + tagBytes.Length + 4 + vectors.Sum(v => 4L + 4L * (v?.Length ?? 0));
        var bytes = new byte[checked((int)size)];
        var span = bytes.AsSpan();
        BinaryPrimitives.WriteInt32LittleEndian(span, tagBytes.Length);
        tagBytes.CopyTo(span[4..]);
        int at = 4 + tagBytes.Length;
        BinaryPrimitives.WriteInt32LittleEndian(span[at..], vectors.Length);
        at += 4;
        foreach (var v in vectors)
        {
            BinaryPrimitives.WriteInt32LittleEndian(span[at..], v?.Length ?? -1);
            at += 4;
            if (v is null) continue;
            MemoryMarshal.AsBytes(v.AsSpan()).CopyTo(span[at..]); // little-endian: the only kind this project builds for
            at += 4 * v.Length;
        }
        return bytes;
    }

    /// <summary>Reads what <see cref="Write"/> wrote with the same tag and vector count; empty state gives none of them.</summary>
    public static float[]?[] Read(string tag, int count, ReadOnlySpan<byte> state)
    {
        var vectors = new float[]?[count];
        if (state.IsEmpty) return vectors;
        try
        {
            int tagLength = BinaryPrimitives.ReadInt32LittleEndian(state);
            string actual = System.Text.Encoding.UTF8.GetString(state.Slice(4, tagLength));
            if (actual != tag) throw new DataException($"strategy state is '{actual}''s, expected '{tag}''s.");
            int at = 4 + tagLength;
            if (BinaryPrimitives.ReadInt32LittleEndian(state[at..]) != count) throw new DataException($"strategy state of '{tag}' holds another number of vectors.");
            at += 4;
            for (int i = 0; i < count; i++)
            {
                int length = BinaryPrimitives.ReadInt32LittleEndian(state[at..]);
                at += 4;
                if (length < 0) continue;
                var v = new float[length];
                state.Slice(at, checked(4 * length)).CopyTo(MemoryMarshal.AsBytes(v.AsSpan()));
                at += 4 * length;
                vectors[i] = v;
            }
            if (at != state.Length) throw new DataException($"strategy state of '{tag}' has {state.Length - at} trailing bytes.");
            return vectors;
        }
        catch (ArgumentOutOfRangeException)
        {
            throw new DataException($"strategy state of '{tag}' is truncated.");
        }
    }
}
