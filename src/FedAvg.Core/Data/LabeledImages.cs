using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace FedAvg.Core.Data;

/// <summary>
/// A whole split held once: images as one float32 tensor [N,1,H,W] and labels as int64 [N].
/// Clients and batches refer to it through index views; nothing copies the set.
/// </summary>
public sealed class LabeledImages : IDisposable
{
    public Tensor Images { get; }
    public Tensor Labels { get; }
    /// <summary>Labels on the managed side, for partitioning without touching tensors.</summary>
    public byte[] LabelValues { get; }
    public int Classes { get; }
    public int Count => LabelValues.Length;

    public LabeledImages(Tensor images, Tensor labels, byte[] labelValues, int classes)
    {
        Images = images;
        Labels = labels;
        LabelValues = labelValues;
        Classes = classes;
    }

    /// <summary>
    /// Refuses images and labels that do not pair up, or images of another size than <paramref name="height"/> ×
    /// <paramref name="width"/>: the models' first layer is built for the dataset's size, and a node's own data of
    /// 32×32 images had reached training, where libtorch failed every round with a shape error and a native trace.
    /// </summary>
    public static void CheckShape(IdxFile images, IdxFile labels, int height, int width)
    {
        if (images.Count != labels.Count)
            throw new DataException($"{images.Path} holds {images.Count} images but {labels.Path} holds {labels.Count} labels.");
        if (images.Dimensions[1] != height || images.Dimensions[2] != width)
            throw new DataException($"{images.Path} holds {images.Dimensions[1]}×{images.Dimensions[2]} images; the models take {height}×{width}.");
    }

    public static LabeledImages FromIdx(IdxFile images, IdxFile labels, DatasetInfo info, bool standardize)
    {
        CheckShape(images, labels, info.Height, info.Width);
        foreach (var label in labels.Data)
            if (label >= info.Classes)
                throw new DataException($"{labels.Path}: label {label} is outside 0..{info.Classes - 1}.");

        int n = images.Count, h = images.Dimensions[1], w = images.Dimensions[2];
        var pixels = new float[images.Data.Length];
        float scale = 1f / 255f;
        if (standardize)
        {
            float inv = 1f / info.Std, mean = info.Mean;
            for (int i = 0; i < pixels.Length; i++) pixels[i] = (images.Data[i] * scale - mean) * inv;
        }
        else
        {
            for (int i = 0; i < pixels.Length; i++) pixels[i] = images.Data[i] * scale;
        }
        var imageTensor = tensor(pixels, [n, 1, h, w]);
        var labelTensor = tensor(labels.Data.Select(b => (long)b).ToArray(), [n]);
        return new LabeledImages(imageTensor, labelTensor, labels.Data, info.Classes);
    }

    /// <summary>The first <paramref name="count"/> samples, as a view (no copy).</summary>
    public LabeledImages Take(int count)
    {
        if (count >= Count) return this;
        return new LabeledImages(Images.narrow(0, 0, count), Labels.narrow(0, 0, count), LabelValues[..count], Classes);
    }

    public void Dispose()
    {
        Images.Dispose();
        Labels.Dispose();
    }
}
