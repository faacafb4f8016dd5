using FedAvg.Core.Strategies;
using static FedAvg.Core.Tests.Strategies.Kit;

namespace FedAvg.Core.Tests.Strategies;

public class MultiKrumStrategyTests
{
    [Fact]
    public void The_m_best_scored_are_averaged_weighted_by_samples_and_the_outlier_is_left_out()
    {
        // scores (KrumStrategyTests.Square): a 6, b 6, c 6, d 4, e 326. m = 3: d, then the tie a, b, c goes to a and b.
        // (1·[0,0] + 1·[2,0] + 2·[1,1]) / 4 = [1, 0.5]
        var result = Round(new MultiKrumStrategy(Options(), f: 1, m: 3), 1, new float[2], KrumStrategyTests.Square(outlierSamples: 1000));
        Assert.Equal([1f, 0.5f], result);
        Assert.Equal([0, 1, 3], MultiKrumStrategy.Select([6, 6, 6, 4, 326], 3));
    }

    [Fact]
    public void With_f_0_and_m_n_it_is_FedAvg_bit_for_bit()
    {
        var rng = new Random(11);
        int length = 2 * System.Numerics.Vector<float>.Count + 3;
        var updates = Ids(5).Select(id => U(id, rng.Next(1, 50), Kit.Random(rng, length))).ToArray();
        Assert.Equal(FedAvgStrategy.WeightedAverage(length, updates),
            Round(new MultiKrumStrategy(Options(), f: 0, m: 5), 1, new float[length], updates.Reverse().ToArray()));
    }

    [Theory]
    [InlineData(7, 2, 5, true)]
    [InlineData(7, 2, 6, false)] // m > n − f
    [InlineData(6, 2, 3, false)] // n ≤ 2f + 2
    public void M_must_be_in_1_to_n_minus_f(int n, int f, int m, bool valid)
    {
        var s = new MultiKrumStrategy(Options(), f, m);
        if (valid) s.Validate(n);
        else Assert.StartsWith("fedavg.strategy.", Assert.Throws<UsageException>(() => s.Validate(n)).Message);
        Assert.StartsWith("fedavg.strategy.m must be at least 1", Assert.Throws<UsageException>(() => new MultiKrumStrategy(Options(), 1, 0)).Message);
    }
}
