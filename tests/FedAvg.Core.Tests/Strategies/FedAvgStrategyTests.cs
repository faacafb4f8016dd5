using FedAvg.Core.Strategies;
using FedAvg.Core.Training;

namespace FedAvg.Core.Tests.Strategies;

public class FedAvgStrategyTests
{
    static ClientUpdate U(string id, int n, params float[] w) => new(id, w, n, 0, 0);

    [Fact]
    public void Weighted_average_matches_hand_computed_values()
    {
        // (1·[0,4,8] + 3·[4,0,-8]) / 4 = [3, 1, -4]
        var result = FedAvgStrategy.WeightedAverage(3, [U("a", 1, 0, 4, 8), U("b", 3, 4, 0, -8)]);
        Assert.Equal([3f, 1f, -4f], result);
        // (2·[1] + 2·[2] + 4·[4]) / 8 = 2.75
        Assert.Equal([2.75f], FedAvgStrategy.WeightedAverage(1, [U("x", 2, 1), U("y", 2, 2), U("z", 4, 4)]));
    }

    [Fact]
    public void Equal_counts_give_the_plain_mean()
    {
        var rng = new Random(1);
        var updates = Enumerable.Range(0, 7).Select(k => U($"c{k}", 50, Enumerable.Range(0, 37).Select(_ => (float)rng.NextDouble()).ToArray())).ToList();
        var result = FedAvgStrategy.WeightedAverage(37, updates);
        for (int i = 0; i < 37; i++)
            Assert.Equal(updates.Average(u => (double)u.Weights[i]), result[i], 1e-6);
    }

    [Fact]
    public void Any_arrival_order_gives_identical_bits()
    {
        var rng = new Random(2);
        int length = 1001; // not a multiple of the vector width: the scalar tail is covered too
        var updates = Enumerable.Range(0, 20).Select(k =>
            U($"client-{k:D3}", rng.Next(1, 500), Enumerable.Range(0, length).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray())).ToList();
        var reference = FedAvgStrategy.WeightedAverage(length, updates);
        for (int trial = 0; trial < 10; trial++)
        {
            var shuffled = updates.OrderBy(_ => rng.Next()).ToList();
            Assert.Equal(reference, FedAvgStrategy.WeightedAverage(length, shuffled));
        }
    }

    [Fact]
    public void The_running_sum_releases_in_order_updates_at_once_and_holds_only_early_arrivals()
    {
        string[] order = ["a", "b", "c", "d"];
        var aggregator = new OrderedWeightedSum(1, order);
        aggregator.Accept(U("a", 1, 1));
        aggregator.Accept(U("b", 1, 2));
        Assert.Equal(0, aggregator.Waiting);
        aggregator.Accept(U("d", 2, 8)); // c has not answered yet: d waits
        Assert.Equal(1, aggregator.Waiting);
        // c never answers (the round closes without it): d is folded at completion
        Assert.Equal([(1f + 2f + 16f) / 4f], aggregator.Complete());
    }

    [Fact]
    public void One_update_or_identical_updates_come_back_within_float_rounding()
    {
        var rng = new Random(5);
        var w = Enumerable.Range(0, 999).Select(_ => (float)(rng.NextDouble() * 200 - 100)).ToArray();
        foreach (var result in new[]
                 {
                     FedAvgStrategy.WeightedAverage(w.Length, [U("only", 317, w)]),
                     FedAvgStrategy.WeightedAverage(w.Length, [U("a", 450, w), U("b", 17, w), U("c", 6000, w)]),
                 })
            for (int i = 0; i < w.Length; i++) Assert.Equal(w[i], result[i], Math.Abs(w[i]) * 4e-7);
    }

    [Fact]
    public void An_update_from_outside_the_round_is_refused()
    {
        var aggregator = new OrderedWeightedSum(1, ["a"]);
        aggregator.Accept(U("z", 1, 1));
        Assert.Throws<ArgumentException>(() => aggregator.Complete());
    }

    [Fact]
    public void Bad_updates_are_refused()
    {
        Assert.Throws<ArgumentException>(() => FedAvgStrategy.WeightedAverage(2, []));
        Assert.Throws<ArgumentException>(() => FedAvgStrategy.WeightedAverage(2, [U("a", 1, 1)]));
        Assert.Throws<ArgumentException>(() => FedAvgStrategy.WeightedAverage(1, [U("a", 0, 1)]));
        Assert.Throws<ArgumentException>(() => FedAvgStrategy.WeightedAverage(1, [U("a", 1, 1), U("a", 2, 1)]));
    }

    static FedAvgStrategy Strategy(double c, int min = 1, int seed = 1) =>
        new(new FedAvgOptions(c, min, new TrainConfig(1, 10, 0.1), seed));

    [Fact]
    public void Sampling_takes_fraction_c_at_least_the_minimum_deterministically_per_round()
    {
        var clients = Enumerable.Range(0, 100).Select(i => $"client-{i:D3}").ToList();
        var plan = Strategy(0.1).ConfigureRound(1, clients);
        Assert.Equal(10, plan.Clients.Count);
        Assert.Equal(plan.Clients.Distinct().Count(), plan.Clients.Count);
        Assert.Equal(plan.Clients, Strategy(0.1).ConfigureRound(1, clients.AsEnumerable().Reverse().ToList()).Clients);
        Assert.NotEqual(plan.Clients, Strategy(0.1).ConfigureRound(2, clients).Clients);
        Assert.NotEqual(plan.Clients, Strategy(0.1, seed: 2).ConfigureRound(1, clients).Clients);
        Assert.Equal(25, Strategy(0.1, min: 25).ConfigureRound(1, clients).Clients.Count);
        Assert.Equal(clients, Strategy(1.0).ConfigureRound(3, clients).Clients);
        // over many rounds every client gets picked
        var picked = Enumerable.Range(1, 100).SelectMany(r => Strategy(0.1).ConfigureRound(r, clients).Clients).ToHashSet();
        Assert.Equal(100, picked.Count);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(1.5)]
    [InlineData(-0.2)]
    public void Fraction_outside_zero_one_is_refused(double c)
    {
        Assert.Contains("fraction", Assert.Throws<UsageException>(() => Strategy(c)).Message);
    }
}

/// <summary>Reuse of update vectors (WeightBuffers): what is taken back, and what the aggregation gives back.</summary>
public class WeightBufferTests
{
    // Each test uses lengths of its own: the pool is process-wide and tests run in parallel.

    [Fact]
    public void A_returned_vector_is_rented_again_and_a_foreign_one_never()
    {
        var foreign = new float[10_001];
        Runtime.WeightBuffers.Return(foreign);
        var rented = Runtime.WeightBuffers.Rent(10_001);
        Assert.NotSame(foreign, rented);
        Runtime.WeightBuffers.Return(rented);
        Assert.Same(rented, Runtime.WeightBuffers.Rent(10_001));
    }

    [Fact]
    public void A_vector_returned_twice_is_handed_out_once()
    {
        var rented = Runtime.WeightBuffers.Rent(10_002);
        Runtime.WeightBuffers.Return(rented);
        Runtime.WeightBuffers.Return(rented);
        var first = Runtime.WeightBuffers.Rent(10_002);
        var second = Runtime.WeightBuffers.Rent(10_002);
        Assert.Same(rented, first);
        Assert.NotSame(first, second);
    }

    [Fact]
    public void As_many_vectors_as_were_out_at_once_come_back_from_the_pool_up_to_its_byte_limit()
    {
        // a server holding 50 seed001-2nn updates (one node's clients waiting for the other's) gets all 50 back
        // next round, not CapacityPerLength of them and the rest from fresh pages
        const int length = 10_004;
        int many = Runtime.WeightBuffers.CapacityPerLength * 4;
        Assert.True(Runtime.WeightBuffers.Keep(length) >= many);
        var first = Enumerable.Range(0, many).Select(_ => Runtime.WeightBuffers.Rent(length)).ToList();
        foreach (var v in first) Runtime.WeightBuffers.Return(v);
        var again = Enumerable.Range(0, many).Select(_ => Runtime.WeightBuffers.Rent(length)).ToHashSet(ReferenceEqualityComparer.Instance);
        Assert.All(first, v => Assert.Contains(v, again));

        // the limit is in bytes: a vector of 6.65 MB (mcmahan-cnn) is kept 40 times, never fewer than CapacityPerLength
        Assert.Equal(40, Runtime.WeightBuffers.Keep(1_663_370));
        Assert.Equal(Runtime.WeightBuffers.CapacityPerLength, Runtime.WeightBuffers.Keep(int.MaxValue / 4));
    }

    [Fact]
    public void The_running_sum_gives_back_rented_updates_once_folded_and_leaves_others_alone()
    {
        var rented = Runtime.WeightBuffers.Rent(10_003);
        Array.Fill(rented, 2f);
        var owned = Enumerable.Repeat(4f, 10_003).ToArray();
        var aggregator = new OrderedWeightedSum(10_003, ["a", "b"]);
        aggregator.Accept(new ClientUpdate("b", owned, 1, 0, 0)); // waits for a: nothing folded, nothing returned
        Assert.NotSame(rented, Runtime.WeightBuffers.Rent(10_003));
        aggregator.Accept(new ClientUpdate("a", rented, 1, 0, 0));
        var average = aggregator.Complete();
        Assert.All(average, v => Assert.Equal(3f, v));
        Assert.All(owned, v => Assert.Equal(4f, v));
        Assert.Same(rented, Runtime.WeightBuffers.Rent(10_003));
        Assert.NotSame(owned, Runtime.WeightBuffers.Rent(10_003));
    }
}
