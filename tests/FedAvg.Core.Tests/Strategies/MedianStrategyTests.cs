using FedAvg.Core.Strategies;
using static FedAvg.Core.Tests.Strategies.Kit;

namespace FedAvg.Core.Tests.Strategies;

public class MedianStrategyTests
{
    static readonly MedianStrategy Median = new(Options());

    [Fact]
    public void Odd_count_takes_the_middle_value_and_rejects_the_outlier_whatever_samples_it_claims()
    {
        // per coordinate: {1,2,3,4,1000} → 3; {10,20,30,40,−1000} → 20; {−1,−2,−3,−4,1000} → −2
        var result = Round(Median, 1, new float[3],
            U("a", 1, 1, 10, -1), U("b", 1, 2, 20, -2), U("c", 1, 3, 30, -3), U("d", 1, 4, 40, -4), U("e", 1_000_000, 1000, -1000, 1000));
        Assert.Equal([3f, 20f, -2f], result);
    }

    [Fact]
    public void Even_count_averages_the_two_middle_values_and_ties_are_values_like_any_other()
    {
        // {1,2,3,1000} → 2.5; {10,20,30,−1000} → 15; {−1,−2,−3,1000} → −1.5; {5,5,5,7} → 5
        var result = Round(Median, 1, new float[4],
            U("a", 1, 1, 10, -1, 5), U("b", 1, 2, 20, -2, 5), U("c", 1, 3, 30, -3, 7), U("e", 1, 1000, -1000, 1000, 5));
        Assert.Equal([2.5f, 15f, -1.5f, 5f], result);
    }

    [Fact]
    public void Every_coordinate_of_the_vector_part_and_the_tail_matches_a_scalar_sort_in_any_arrival_order()
    {
        var rng = new Random(4);
        int length = 3 * System.Numerics.Vector<float>.Count + 5;
        var updates = Ids(6).Select(id => U(id, 1, Kit.Random(rng, length))).ToArray();
        var expected = Enumerable.Range(0, length).Select(i =>
        {
            var v = updates.Select(u => u.Weights[i]).Order().ToArray();
            return (v[2] + v[3]) * 0.5f;
        }).ToArray();
        Assert.Equal(expected, Round(Median, 1, new float[length], updates));
        Assert.Equal(expected, Round(Median, 1, new float[length], updates.Reverse().ToArray()));
    }

    [Fact]
    public void Held_updates_go_back_to_the_pool_only_after_complete_has_read_them()
    {
        const int length = 10_011; // a length of its own: the pool is process-wide
        var rented = Runtime.WeightBuffers.Rent(length);
        Array.Fill(rented, 1f);
        var aggregator = Median.StartAggregation(Median.ConfigureRound(1, ["a", "b", "c"]), new float[length]);
        aggregator.Accept(new ClientUpdate("a", rented, 1, 0, 0));
        aggregator.Accept(new ClientUpdate("b", Enumerable.Repeat(2f, length).ToArray(), 1, 0, 0));
        aggregator.Accept(new ClientUpdate("c", Enumerable.Repeat(3f, length).ToArray(), 1, 0, 0));
        var other = Runtime.WeightBuffers.Rent(length);
        Assert.NotSame(rented, other); // still held: not handed out
        Runtime.WeightBuffers.Return(other);
        var result = aggregator.Complete();
        Assert.All(result, v => Assert.Equal(2f, v));
        Assert.NotSame(rented, result);
        var again = new[] { Runtime.WeightBuffers.Rent(length), Runtime.WeightBuffers.Rent(length) };
        Assert.Contains(rented, again); // returned once read
        Assert.Throws<InvalidOperationException>(() => aggregator.Complete());
    }
}
