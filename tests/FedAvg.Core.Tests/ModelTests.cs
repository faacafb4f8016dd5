using FedAvg.Core.Models;
using TorchSharp;

namespace FedAvg.Core.Tests;

public class ModelTests
{
    [Theory]
    [InlineData("seed000-cnn", 21_840)]
    [InlineData("seed001-2nn", 199_210)]
    [InlineData("seed002-cnn", 225_034)]
    [InlineData("mcmahan-cnn", 1_663_370)]
    public void Models_have_their_published_parameter_counts_and_ten_outputs(string name, long parameters)
    {
        using var model = ModelZoo.Create(name, seed: 1);
        Assert.Equal(parameters, Weights.ParameterCount(model));
        Assert.Equal(parameters, WeightLayout.Of(model).TotalLength);
        using var input = torch.zeros(3, 1, 28, 28);
        using var output = model.call(input);
        Assert.Equal(new long[] { 3, 10 }, output.shape);
    }

    [Fact]
    public void Same_seed_same_initial_weights_other_seed_other_weights()
    {
        using var a = ModelZoo.Create("seed002-cnn", 5);
        using var b = ModelZoo.Create("seed002-cnn", 5);
        using var c = ModelZoo.Create("seed002-cnn", 6);
        var layout = WeightLayout.Of(a);
        Assert.Equal(Weights.Read(a, layout), Weights.Read(b, layout));
        Assert.NotEqual(Weights.Read(a, layout), Weights.Read(c, layout));
    }

    [Fact]
    public void Unknown_model_lists_the_valid_names()
    {
        var e = Assert.Throws<UsageException>(() => ModelZoo.Create("resnet50"));
        foreach (var name in ModelZoo.Names) Assert.Contains(name, e.Message);
    }

    [Fact]
    public void Weights_round_trip_through_a_flat_vector_into_another_module()
    {
        using var source = ModelZoo.Create("mcmahan-cnn", 1);
        using var target = ModelZoo.Create("mcmahan-cnn", 2);
        var layout = WeightLayout.Of(source);
        var vector = Weights.Read(source, layout);
        Weights.Write(target, layout, vector);
        Assert.Equal(vector, Weights.Read(target, layout));
        // the module really computes with the new weights
        // a generator of its own: the global one is ModelZoo.Create's, behind its lock (KernelTests builds two models
        // from one seed and compares them bit for bit, while test classes run in parallel)
        using var input = torch.rand([2, 1, 28, 28], generator: new torch.Generator(3));
        Assert.True(source.call(input).allclose(target.call(input)));
        // the layout names every tensor with its shape and offset, in order
        Assert.Equal(["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"],
            layout.Entries.Select(e => e.Name));
        Assert.Equal(new long[] { 512, 3136 }, layout.Entries[4].Shape);
    }

    [Fact]
    public void Writing_a_vector_of_the_wrong_length_is_refused()
    {
        using var model = ModelZoo.Create("seed001-2nn");
        var layout = WeightLayout.Of(model);
        Assert.Throws<ArgumentException>(() => Weights.Write(model, layout, new float[10]));
    }
}
