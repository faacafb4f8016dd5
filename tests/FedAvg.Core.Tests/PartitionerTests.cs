using FedAvg.Core.Partitioning;
using FedAvg.Tests.Shared;

namespace FedAvg.Core.Tests;

public class PartitionerTests
{
    static byte[] Labels => TestData.MnistTrain.LabelValues;

    static double[] GlobalHistogram() => Sampling.Histogram(Labels, Enumerable.Range(0, Labels.Length), 10);

    static double MeanTvToGlobal(int[][] parts)
    {
        var global = GlobalHistogram();
        return parts.Average(p => Sampling.TotalVariation(Sampling.Histogram(Labels, p, 10), global));
    }

    static void AssertDisjoint(int[][] parts, bool coversAll)
    {
        var all = parts.SelectMany(p => p).ToArray();
        Assert.Equal(all.Length, all.Distinct().Count());
        Assert.All(all, i => Assert.InRange(i, 0, Labels.Length - 1));
        if (coversAll) Assert.Equal(Labels.Length, all.Length);
    }

    [Theory]
    [InlineData("iid", true)]
    [InlineData("contiguous", true)]
    [InlineData("shards", true)]
    [InlineData("dirichlet:0.5", true)]
    [InlineData("classes:2", true)]
    [InlineData("iid-balanced", false)]
    [InlineData("iid-balanced:450", false)]
    [InlineData("iid:37", false)]
    public void Every_partition_uses_each_index_at_most_once_and_is_deterministic(string spec, bool coversAll)
    {
        var partitioner = Partitioner.Parse(spec);
        var a = partitioner.Split(Labels, 10, 100, seed: 7);
        var b = partitioner.Split(Labels, 10, 100, seed: 7);
        Assert.Equal(100, a.Length);
        AssertDisjoint(a, coversAll);
        Assert.Equal(a, b);
        Assert.All(a, p => Assert.NotEmpty(p));
        Assert.Equal(spec, partitioner.Spec);
    }

    [Fact]
    public void Different_seeds_give_different_random_partitions()
    {
        foreach (var spec in new[] { "iid", "shards", "dirichlet:0.5", "classes:2", "iid-balanced" })
            Assert.NotEqual(Partitioner.Parse(spec).Split(Labels, 10, 10, 1), Partitioner.Parse(spec).Split(Labels, 10, 10, 2));
    }

    [Fact]
    public void Iid_sizes_differ_by_at_most_one_and_histograms_are_close_to_global()
    {
        var parts = Partitioner.Parse("iid").Split(Labels, 10, 7, 3);
        Assert.True(parts.Max(p => p.Length) - parts.Min(p => p.Length) <= 1);
        Assert.True(MeanTvToGlobal(parts) < 0.03, $"mean TV {MeanTvToGlobal(parts)}");
    }

    [Fact]
    public void Iid_balanced_gives_every_client_the_same_count_of_every_label()
    {
        var parts = Partitioner.Parse("iid-balanced:450").Split(Labels, 10, 100, 1);
        foreach (var part in parts)
        {
            Assert.Equal(450, part.Length);
            var counts = part.GroupBy(i => Labels[i]).ToDictionary(g => g.Key, g => g.Count());
            Assert.Equal(10, counts.Count);
            Assert.All(counts.Values, c => Assert.Equal(45, c));
        }
        // without a size: as many as the rarest label allows (5421 fives in MNIST's training set)
        var full = Partitioner.Parse("iid-balanced").Split(Labels, 10, 10, 1);
        Assert.All(full, p => Assert.Equal(5420, p.Length));
    }

    [Fact]
    public void Contiguous_is_consecutive_slices_in_file_order()
    {
        var parts = Partitioner.Parse("contiguous").Split(Labels, 10, 10, 99);
        for (int k = 0; k < 10; k++) Assert.Equal(Enumerable.Range(k * 6000, 6000), parts[k]);
    }

    [Fact]
    public void Shards_give_each_client_at_most_two_labels_mostly()
    {
        var parts = Partitioner.Parse("shards").Split(Labels, 10, 100, 5);
        Assert.All(parts, p => Assert.Equal(600, p.Length));
        var labelsPerClient = parts.Select(p => p.Select(i => Labels[i]).Distinct().Count()).ToArray();
        // two shards of 300 sorted samples: two labels, occasionally three where a shard straddles a label boundary
        Assert.All(labelsPerClient, n => Assert.InRange(n, 1, 4));
        Assert.True(labelsPerClient.Average() <= 2.3, $"mean labels per client {labelsPerClient.Average()}");
        Assert.True(MeanTvToGlobal(parts) > 0.7);
    }

    [Fact]
    public void Classes_k_gives_each_client_exactly_k_labels_and_every_label_to_the_same_number_of_clients()
    {
        var parts = Partitioner.Parse("classes:2").Split(Labels, 10, 10, 4);
        Assert.All(parts, p => Assert.Equal(2, p.Select(i => Labels[i]).Distinct().Count()));
        var holders = Enumerable.Range(0, 10).Select(c => parts.Count(p => p.Any(i => Labels[i] == c))).ToArray();
        Assert.All(holders, h => Assert.Equal(2, h));
    }

    [Fact]
    public void Dirichlet_alpha_controls_skew_measured_as_total_variation_to_the_global_histogram()
    {
        double skewed = MeanTvToGlobal(Partitioner.Parse("dirichlet:0.1").Split(Labels, 10, 50, 1));
        double middle = MeanTvToGlobal(Partitioner.Parse("dirichlet:1").Split(Labels, 10, 50, 1));
        double nearIid = MeanTvToGlobal(Partitioner.Parse("dirichlet:1000").Split(Labels, 10, 50, 1));
        Assert.True(skewed > 0.6, $"α=0.1: {skewed}");
        Assert.True(skewed > middle && middle > nearIid, $"{skewed} > {middle} > {nearIid}");
        Assert.True(nearIid < 0.1, $"α=1000: {nearIid}");
    }

    [Theory]
    [InlineData("dirichlet:0")]
    [InlineData("dirichlet:-1")]
    [InlineData("dirichlet:abc")]
    [InlineData("dirichlet")]
    [InlineData("classes:0")]
    [InlineData("shards:0")]
    [InlineData("iid-balanced:0")]
    [InlineData("pathological")]
    [InlineData("iid:0")]
    [InlineData("iid:x")]
    public void Bad_specs_are_refused_with_the_valid_names(string spec)
    {
        var e = Assert.Throws<UsageException>(() => Partitioner.Parse(spec));
        Assert.Contains($"'{spec}'", e.Message);
    }

    [Fact]
    public void Impossible_sizes_are_refused_before_any_work()
    {
        Assert.Contains("must not exceed", Assert.Throws<UsageException>(() => Partitioner.Parse("iid").Split(Labels, 10, Labels.Length + 1, 1)).Message);
        Assert.Contains("multiple", Assert.Throws<UsageException>(() => Partitioner.Parse("iid-balanced:455").Split(Labels, 10, 10, 1)).Message);
        Assert.Contains("rarest", Assert.Throws<UsageException>(() => Partitioner.Parse("iid-balanced:4500").Split(Labels, 10, 100, 1)).Message);
        Assert.Contains("cannot cover", Assert.Throws<UsageException>(() => Partitioner.Parse("classes:2").Split(Labels, 10, 4, 1)).Message);
        Assert.Contains("needs 60006", Assert.Throws<UsageException>(() => Partitioner.Parse("iid:6").Split(Labels, 10, 10001, 1)).Message);
        Assert.Contains("at least 1", Assert.Throws<UsageException>(() => Partitioner.Parse("iid").Split(Labels, 10, 0, 1)).Message);
    }
}
