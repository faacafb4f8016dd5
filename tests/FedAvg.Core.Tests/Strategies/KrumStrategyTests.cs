using FedAvg.Core.Strategies;
using static FedAvg.Core.Tests.Strategies.Kit;

namespace FedAvg.Core.Tests.Strategies;

public class KrumStrategyTests
{
    // a=[0,0] b=[2,0] c=[0,2] d=[1,1] e=[10,10]. Squared distances: ab 4, ac 4, ad 2, ae 200, bc 8, bd 2, be 164,
    // cd 2, ce 164, de 162. With f = 1, n − f − 2 = 2 nearest: a 2+4 = 6, b 2+4 = 6, c 2+4 = 6, d 2+2 = 4, e 162+164 = 326.
    internal static ClientUpdate[] Square(int outlierSamples = 1) =>
        [U("a", 1, 0, 0), U("b", 1, 2, 0), U("c", 1, 0, 2), U("d", 2, 1, 1), U("e", outlierSamples, 10, 10)];

    [Fact]
    public void Scores_are_the_sums_of_the_n_minus_f_minus_2_nearest_squared_distances()
    {
        var scores = KrumRule.Scores(KrumRule.Distances(Square()), [0, 1, 2, 3, 4], f: 1);
        Assert.Equal([6.0, 6.0, 6.0, 4.0, 326.0], scores);
        Assert.Equal(8.0, KrumRule.Distances(Square())[1, 2]);
    }

    [Fact]
    public void Krum_picks_the_most_central_update_and_never_the_outlier()
    {
        var result = Round(new KrumStrategy(Options(), f: 1), 1, new float[2], Square(outlierSamples: 1_000_000));
        Assert.Equal([1f, 1f], result);
    }

    [Fact]
    public void A_tie_goes_to_the_first_client_in_id_order_whatever_the_arrival_order()
    {
        // unit square a=[0,0] b=[1,0] c=[0,1] d=[1,1] scores 1+1 = 2 each; e=[10,10] 162+181 = 343
        ClientUpdate[] updates = [U("d", 1, 1, 1), U("e", 1, 10, 10), U("c", 1, 0, 1), U("a", 1, 0, 0), U("b", 1, 1, 0)];
        Assert.Equal([0f, 0f], Round(new KrumStrategy(Options(), f: 1), 1, new float[2], updates));
    }

    [Theory]
    [InlineData(4, 1, false)]
    [InlineData(5, 1, true)]
    [InlineData(6, 2, false)]
    [InlineData(7, 2, true)]
    [InlineData(3, 0, true)]
    [InlineData(2, 0, false)]
    public void Krum_needs_more_than_2f_plus_2_clients_per_round(int n, int f, bool valid)
    {
        var krum = new KrumStrategy(Options(), f);
        if (valid) krum.Validate(n);
        else Assert.StartsWith("fedavg.strategy.f: krum with f = ", Assert.Throws<UsageException>(() => krum.Validate(n)).Message);
    }

    [Fact]
    public void A_round_closed_with_too_few_updates_is_refused_and_f_must_be_whole()
    {
        var krum = new KrumStrategy(Options(), f: 1);
        var aggregator = krum.StartAggregation(new RoundPlan(1, Ids(5), RoundConfig.From(Options().Train), 5), new float[1]);
        foreach (var id in Ids(4)) aggregator.Accept(U(id, 1, 1));
        Assert.Contains("at least 5", Assert.Throws<InvalidOperationException>(() => aggregator.Complete()).Message);
        var e = Assert.Throws<UsageException>(() => StrategyRegistry.Create("krum", new Dictionary<string, string> { ["f"] = "1.5" }, Options()));
        Assert.Equal("fedavg.strategy.f must be a whole number, got 1.5.", e.Message);
    }
}
